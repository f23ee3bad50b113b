"""Discovery, trust refusals, the two transports, an explicit (forwarded) socket and
connect-or-spawn, against the real daemon."""

import http.server
import io
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import r1client
from support import R1_BIN, WAIT, DaemonCase, SocketRelay, pid_gone, stop_daemon, wait_for


class DiscoveryAndTrust(DaemonCase):
    """One daemon; discovery from daemon.json + token, and what makes it refuse."""

    def test_discovers_the_registered_daemon_over_the_unix_socket(self) -> None:
        c = r1client.connect(self.home)
        reg = json.loads((self.home / "daemon.json").read_text())
        self.assertIsInstance(c.transport, r1client.UnixTransport)
        self.assertEqual(c.transport.path, reg["sock"])
        self.assertEqual(c.registration["pid"], reg["pid"])
        hs = c.daemon_handshake()
        self.assertEqual(hs["protocol"], r1client.PROTOCOL)
        self.assertEqual(hs["pid"], reg["pid"])
        self.assertEqual(c.daemon_health()["status"], "ok")

    def test_r1_home_from_the_environment(self) -> None:
        old = os.environ.get("R1_HOME")
        os.environ["R1_HOME"] = str(self.home)
        try:
            c = r1client.connect()
        finally:
            if old is None:
                del os.environ["R1_HOME"]
            else:
                os.environ["R1_HOME"] = old
        self.assertEqual(c.home, self.home)
        self.assertEqual(c.daemon_health()["status"], "ok")

    def test_tcp_with_the_token(self) -> None:
        c = r1client.connect(self.home, tcp=True)
        reg = json.loads((self.home / "daemon.json").read_text())
        self.assertIsInstance(c.transport, r1client.TcpTransport)
        self.assertEqual(f"http://{c.transport.host_name}:{c.transport.port}", reg["url"])
        s = c.session_start(workdir=str(self.workdir), engine="echo")
        self.assertEqual(c.session_get(s["id"])["id"], s["id"])
        self.assertIn(s["id"], [x["id"] for x in c.session_list()["sessions"]])

    def test_tcp_fallback_when_the_socket_is_unreachable(self) -> None:
        sock = json.loads((self.home / "daemon.json").read_text())["sock"]
        aside = sock + ".aside"
        os.rename(sock, aside)
        try:
            with self.assertRaises(r1client.UnreachableError):
                r1client.connect(self.home, tcp=False)
            c = r1client.connect(self.home)
            self.assertIsInstance(c.transport, r1client.TcpTransport)
            self.assertEqual(c.daemon_health()["status"], "ok")
        finally:
            os.rename(aside, sock)
        self.assertIsInstance(r1client.connect(self.home).transport, r1client.UnixTransport)

    def test_group_readable_token_is_refused(self) -> None:
        token = self.home / "token"
        os.chmod(token, 0o640)
        try:
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(self.home)
            self.assertIn("token", cm.exception.message)
            self.assertIn("640", cm.exception.message)
            self.assertEqual(cm.exception.code, "permission_denied")
            self.assertIsNone(cm.exception.status)
            self.assertEqual(cm.exception.exit_code, 5)
        finally:
            os.chmod(token, 0o600)
        self.assertEqual(r1client.connect(self.home).daemon_health()["status"], "ok")

    def test_symlinked_daemon_json_is_refused(self) -> None:
        other = self.tmp / "linked-home"
        os.mkdir(other, 0o700)
        try:
            os.symlink(self.home / "daemon.json", other / "daemon.json")
            shutil.copy(self.home / "token", other / "token")
            os.chmod(other / "token", 0o600)
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(other)
            self.assertIn("daemon.json", cm.exception.message)
            self.assertIn("symlink", cm.exception.message)
        finally:
            shutil.rmtree(other)

    def test_symlinked_token_is_refused(self) -> None:
        other = self.tmp / "linked-token"
        os.mkdir(other, 0o700)
        try:
            shutil.copy(self.home / "daemon.json", other / "daemon.json")
            os.chmod(other / "daemon.json", 0o600)
            os.symlink(self.home / "token", other / "token")
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(other)
            self.assertIn("token", cm.exception.message)
        finally:
            shutil.rmtree(other)

    def test_open_state_dir_and_symlinked_state_dir_are_refused(self) -> None:
        os.chmod(self.home, 0o750)
        try:
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(self.home)
            self.assertIn("chmod 700", cm.exception.message)
        finally:
            os.chmod(self.home, 0o700)
        link = self.tmp / "home-link"
        os.symlink(self.home, link)
        try:
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(link)
            self.assertIn("symlink", cm.exception.message)
        finally:
            os.unlink(link)

    @unittest.skipUnless(os.geteuid() == 0, "changing a file's owner needs root")
    def test_daemon_json_of_another_user_is_refused(self) -> None:
        other = self.tmp / "foreign"
        os.mkdir(other, 0o700)
        try:
            shutil.copy(self.home / "daemon.json", other / "daemon.json")
            os.chmod(other / "daemon.json", 0o600)
            os.chown(other / "daemon.json", 65534, 65534)
            with self.assertRaises(r1client.UntrustedError) as cm:
                r1client.connect(other)
            self.assertIn("uid 65534", cm.exception.message)
        finally:
            shutil.rmtree(other)

    def test_forwarded_socket_through_sock_and_r1_sock(self) -> None:
        reg = json.loads((self.home / "daemon.json").read_text())
        relay = SocketRelay(self.tmp / "fwd.sock", reg["sock"])
        try:
            # The token comes from the state directory, as for the CLI.
            c = r1client.connect(self.home, sock=relay.path)
            self.assertIsInstance(c.transport, r1client.UnixTransport)
            self.assertEqual(c.transport.path, relay.path)
            self.assertIsNone(c.registration)
            s = c.session_start(workdir=str(self.workdir), engine="echo")
            self.assertEqual(c.session_get(s["id"])["id"], s["id"])
            self.assertGreaterEqual(relay.connections, 2)
            # A client machine with no r1 state at all: the token passed explicitly.
            empty = self.tmp / "no-state"
            os.environ["R1_SOCK"] = relay.path
            try:
                before = relay.connections
                c2 = r1client.connect(empty, token=(self.home / "token").read_text().strip())
                self.assertEqual(c2.transport.path, relay.path)
                self.assertEqual(c2.session_get(s["id"])["id"], s["id"])
                self.assertGreater(relay.connections, before)
                # Without a token anywhere, the client says where it looked.
                with self.assertRaises(r1client.UnreachableError) as cm:
                    r1client.connect(empty)
                self.assertIn("no token", cm.exception.message)
            finally:
                del os.environ["R1_SOCK"]
            # A wrong token is the daemon's refusal, with its code.
            bad = r1client.connect(self.home, sock=relay.path, token="not-the-token")
            with self.assertRaises(r1client.PermissionDeniedError) as cm:
                bad.session_list()
            self.assertEqual(cm.exception.status, 401)
        finally:
            relay.close()

    def test_rotated_token_is_read_again(self) -> None:
        c = r1client.connect(self.home)
        old = (self.home / "token").read_text().strip()
        c.session_list()
        proc = subprocess.run(
            [R1_BIN, "ctl", "--no-spawn", "rotate-token"],
            env=dict(os.environ, R1_HOME=str(self.home)),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotEqual((self.home / "token").read_text().strip(), old)
        # The cached token is refused once (401), read again, and the call succeeds.
        self.assertIn("sessions", c.session_list())


class ConnectOrSpawn(DaemonCase):
    """A state directory that does not exist yet: connect-or-spawn starts the daemon."""

    START = False

    def setUp(self) -> None:
        self.fresh = Path(tempfile.mkdtemp(prefix="r1sdk-spawn-")) / "state"
        self.addCleanup(shutil.rmtree, self.fresh.parent, True)
        self.addCleanup(stop_daemon, self.fresh)

    def test_connect_without_a_daemon_fails_and_spawns_nothing(self) -> None:
        with self.assertRaises(r1client.UnreachableError) as cm:
            r1client.connect(self.fresh)
        self.assertEqual(cm.exception.exit_code, 4)
        self.assertFalse(self.fresh.exists())

    def test_spawns_from_nothing_and_reuses_it(self) -> None:
        c = r1client.connect_or_spawn(self.fresh, r1_bin=R1_BIN, spawn_timeout=WAIT)
        self.assertEqual(os.stat(self.fresh).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(self.fresh / "token").st_mode & 0o777, 0o600)
        reg = c.registration
        self.assertFalse(pid_gone(reg["pid"]))
        self.assertEqual(c.daemon_handshake()["pid"], reg["pid"])
        again = r1client.connect_or_spawn(self.fresh, r1_bin=R1_BIN, spawn_timeout=WAIT)
        self.assertEqual(again.registration["id"], reg["id"])

    def test_racing_clients_start_one_daemon(self) -> None:
        results: list = []

        def go() -> None:
            try:
                results.append(
                    r1client.connect_or_spawn(self.fresh, r1_bin=R1_BIN, spawn_timeout=WAIT).registration["id"]
                )
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                results.append(e)

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 2)
        self.assertEqual(len(results), 4, results)
        self.assertEqual(len(set(results)), 1, results)
        self.assertTrue(all(isinstance(r, str) for r in results), results)

    def test_r1_bin_from_the_environment_and_a_missing_binary(self) -> None:
        with self.assertRaises(r1client.UnreachableError) as cm:
            r1client.connect_or_spawn(self.fresh, r1_bin=str(self.fresh.parent / "no-such-r1"), spawn_timeout=2)
        self.assertIn("no-such-r1", cm.exception.message)
        old = os.environ.get("R1_BIN")
        os.environ["R1_BIN"] = R1_BIN
        try:
            c = r1client.connect_or_spawn(self.fresh, spawn_timeout=WAIT)
        finally:
            if old is None:
                del os.environ["R1_BIN"]
            else:
                os.environ["R1_BIN"] = old
        self.assertEqual(c.daemon_health()["status"], "ok")
        wait_for("daemon.json", lambda: (self.fresh / "daemon.json").exists())


class _OldHandshake(http.server.BaseHTTPRequestHandler):
    """A daemon that speaks another protocol."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"protocol": "r1.proto.v0", "version": "0.0.1", "pid": 4242}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class ProtocolGate(unittest.TestCase):
    """A registered daemon that answers the handshake with another protocol is
    refused (the CLI's exit code 3), and nothing is spawned over it."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="r1sdk-gate-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.home = self.tmp / "home"
        os.mkdir(self.home, 0o700)
        sock = str(self.home / "r1.sock")
        self.server = socketserver.ThreadingUnixStreamServer(sock, _OldHandshake)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        reg = {"id": "d_old", "pid": 4242, "version": "0.0.1", "protocol": "r1.proto.v0",
               "url": "http://127.0.0.1:9", "sock": sock}
        fd = os.open(self.home / "daemon.json", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(reg, f)

    def test_incompatible_daemon_is_refused(self) -> None:
        for attempt in (r1client.connect, lambda h: r1client.connect_or_spawn(h, r1_bin=R1_BIN)):
            with self.assertRaises(r1client.IncompatibleError) as cm:
                attempt(self.home)
            e = cm.exception
            self.assertEqual((e.code, e.exit_code), ("schema_version", 3))
            self.assertIn("r1.proto.v0", e.message)
            self.assertIn(r1client.PROTOCOL, e.message)
        self.assertEqual(json.loads((self.home / "daemon.json").read_text())["id"], "d_old")


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv to run a listener as another user")
class ForeignListener(unittest.TestCase):
    """The token goes over TCP only to a listener of the user's own: a registered port
    now held by another user's process is refused, and never sent the token."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="r1sdk-foreign-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.chmod(self.tmp, 0o755)
        script = (
            "import socket,sys\n"
            "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(8)\n"
            "print(s.getsockname()[1], flush=True)\n"
            "while True:\n"
            "    c,_=s.accept(); sys.stderr.write('connected\\n'); sys.stderr.flush(); c.close()\n"
        )
        # Any Python the other user can run: the venv's own lives in a private temp dir.
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.addCleanup(self.proc.stderr.close)  # type: ignore[union-attr]
        self.addCleanup(self.proc.stdout.close)  # type: ignore[union-attr]
        self.addCleanup(self.proc.wait, WAIT)
        self.addCleanup(self.proc.kill)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.assertTrue(line.strip().isdigit(), f"the listener did not start: {line!r}")
        port = int(line)
        self.home = self.tmp / "home"
        os.mkdir(self.home, 0o700)
        reg = {"id": "d_gone", "pid": 1, "version": "0.1.0", "protocol": r1client.PROTOCOL,
               "url": f"http://127.0.0.1:{port}", "sock": str(self.home / "r1.sock")}
        for name, text in (("daemon.json", json.dumps(reg)), ("token", "secret-token")):
            fd = os.open(self.home / name, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def test_tcp_to_another_users_listener_is_refused(self) -> None:
        with self.assertRaises(r1client.UntrustedError) as cm:
            r1client.connect(self.home, tcp=True)
        self.assertIn("does not belong to you", cm.exception.message)
        # As a fallback it is a stale registration: no daemon, nothing sent.
        with self.assertRaises(r1client.UnreachableError):
            r1client.connect(self.home)
        self.proc.kill()
        self.proc.wait(WAIT)
        self.assertNotIn("connected", self.proc.stderr.read())  # type: ignore[union-attr]

    def test_a_socket_served_by_another_user_is_refused(self) -> None:
        sockdir = self.tmp / "shared"
        os.mkdir(sockdir)
        os.chmod(sockdir, 0o777)
        path = sockdir / "r1.sock"
        script = (
            "import socket,sys\n"
            f"s=socket.socket(socket.AF_UNIX); s.bind({str(path)!r}); s.listen(8)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    c,_=s.accept(); sys.stderr.write(repr(c.recv(4096))+'\\n'); sys.stderr.flush(); c.close()\n"
        )
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
        proc = subprocess.Popen(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.addCleanup(proc.stderr.close)  # type: ignore[union-attr]
        self.addCleanup(proc.stdout.close)  # type: ignore[union-attr]
        self.addCleanup(proc.wait, WAIT)
        self.addCleanup(proc.kill)
        self.assertEqual(proc.stdout.readline().strip(), "ready")  # type: ignore[union-attr]
        with self.assertRaises(r1client.UntrustedError) as cm:
            r1client.connect(self.home, sock=path, token="secret-token")
        self.assertIn("served by uid 65534", cm.exception.message)
        proc.kill()
        proc.wait(WAIT)
        # It was connected to (the check needs a connection) but sent nothing.
        self.assertNotIn("secret-token", proc.stderr.read())  # type: ignore[union-attr]


def _record(seq: int) -> bytes:
    rec = {"v": 1, "seq": seq, "at": "2026-01-01T00:00:00Z", "kind": "session.delta", "lane": "main",
           "data": {"text": f"d{seq}"}}
    return f"id: {seq}\nevent: session.delta\ndata: {json.dumps(rec)}\n\n".encode()


class _ScriptedStream(http.server.BaseHTTPRequestHandler):
    """A daemon whose event stream follows `server.script`: one entry per stream
    request, a list of seqs to send (then the stream ends) or "heartbeats" (comments
    every 50 ms until the client goes). It records each request's Last-Event-ID."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        server = self.server
        if self.path == "/v1/handshake":
            body = json.dumps({"protocol": r1client.PROTOCOL, "version": "test", "pid": 1}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        server.requests.append((self.path, self.headers.get("Last-Event-ID")))  # type: ignore[attr-defined]
        step = server.script.pop(0) if server.script else "heartbeats"  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if step == "heartbeats":
                self.wfile.write(_record(1))
                while True:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    time.sleep(0.05)
            for seq in step:
                self.wfile.write(_record(seq))
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class FollowAgainstAScriptedStream(unittest.TestCase):
    """`follow`'s rules on a stream that misbehaves on purpose."""

    def start(self, script: list) -> "r1client.Client":
        tmp = Path(tempfile.mkdtemp(prefix="r1sdk-sse-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        server = socketserver.ThreadingUnixStreamServer(str(tmp / "s.sock"), _ScriptedStream)
        server.daemon_threads = True
        server.script = script  # type: ignore[attr-defined]
        server.requests = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.server = server
        return r1client.connect(tmp / "none", sock=tmp / "s.sock", token="t")

    def test_gaps_and_duplicates_are_never_yielded(self) -> None:
        # A gap (3 missing), then a replay that repeats what was seen, then the rest.
        c = self.start([[1, 2, 4, 5], [2, 3, 4], [3, 4, 5, 6]])
        got = []
        for rec in c.follow("ses_x", 1, timeout=WAIT):
            got.append(rec["seq"])
            if rec["seq"] == 6:
                break
        self.assertEqual(got, [1, 2, 3, 4, 5, 6])
        reqs = self.server.requests  # type: ignore[attr-defined]
        self.assertEqual(reqs[0], ("/v1/sessions/ses_x/events?since_seq=1", None))
        self.assertEqual([r[1] for r in reqs[1:3]], ["2", "4"])
        self.assertEqual(c.reconnects, 2)

    def test_deadline_holds_while_heartbeats_keep_the_stream_alive(self) -> None:
        c = self.start(["heartbeats"])
        started = time.monotonic()
        got = []
        with self.assertRaises(r1client.DeadlineError):
            for rec in c.follow("ses_x", 1, timeout=1.0, idle_timeout=0.5):
                got.append(rec["seq"])
        self.assertEqual(got, [1])
        self.assertLess(time.monotonic() - started, 5)
        # Heartbeats every 50 ms kept it under the 0.5 s idle timeout: no reconnect.
        self.assertEqual(c.reconnects, 0)


class SseReader(unittest.TestCase):
    """The event-stream reader on its own."""

    def test_frames_heartbeats_and_line_endings(self) -> None:
        from r1client._sse import read_frames

        raw = (
            b": keep-alive\n\n"
            b"id: 1\nevent: session.created\ndata: {\"seq\":1}\n\n"
            b"id: 2\r\nevent: session.delta\r\ndata: line one\r\ndata:line two\r\n\r\n"
            b"event: error\ndata: {\"code\":\"stream.dropped\"}\n\n"
            b"id: 3\ndata: cut off"
        )
        frames = list(read_frames(io.BytesIO(raw)))
        self.assertEqual([(f.id, f.event) for f in frames], [("1", "session.created"), ("2", "session.delta"), (None, "error")])
        self.assertEqual(frames[0].data, '{"seq":1}')
        self.assertEqual(frames[1].data, "line one\nline two")


if __name__ == "__main__":
    unittest.main()
