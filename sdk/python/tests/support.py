"""What the SDK tests share: the r1 binary, a fresh private state directory per test
class with its daemon, polling with deadlines, and a relay that stands in for an
SSH-forwarded unix socket."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import r1client

REPO = Path(__file__).resolve().parents[3]
#: The r1 binary under test: `$R1_BIN`, else the workspace's debug build.
R1_BIN = os.environ.get("R1_BIN") or str(REPO / "target" / "debug" / "r1")

#: Bound on any wait for the daemon in these tests (a cold debug binary on a loaded
#: two-core CI machine can take a few seconds to start).
WAIT = 30.0


def wait_for(what: str, cond: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Polls `cond` until it returns something truthy, failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def pid_gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie counts as exited: the daemon re-exec'd by a
    restart is nobody's child here, so nothing may reap it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def r1(home: Path, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    """Runs the r1 CLI on `home`."""
    env = dict(os.environ, R1_HOME=str(home))
    env.pop("R1_SOCK", None)
    return subprocess.run(
        [R1_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class DaemonCase(unittest.TestCase):
    """A test class with its own `R1_HOME` (mode 0700) and, unless `START` is False,
    a daemon spawned through the SDK; the daemon is shut down and the directory
    removed afterwards."""

    START = True
    home: Path
    client: "r1client.Client"

    @classmethod
    def setUpClass(cls) -> None:
        if not os.access(R1_BIN, os.X_OK):
            raise unittest.SkipTest(f"no r1 binary at {R1_BIN}; build it or set R1_BIN")
        os.environ.pop("R1_SOCK", None)
        cls.tmp = Path(tempfile.mkdtemp(prefix="r1sdk-"))
        os.chmod(cls.tmp, 0o700)
        cls.home = cls.tmp / "home"
        cls.workdir = cls.tmp / "work"
        cls.workdir.mkdir()
        os.mkdir(cls.home, 0o700)
        if cls.START:
            cls.client = r1client.connect_or_spawn(cls.home, r1_bin=R1_BIN, spawn_timeout=WAIT)

    @classmethod
    def tearDownClass(cls) -> None:
        stop_daemon(cls.home)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start_session(self, **kw: Any) -> Dict[str, Any]:
        kw.setdefault("engine", "echo")
        return self.client.session_start(workdir=str(self.workdir), **kw)

    def records_until(
        self,
        session_id: str,
        since_seq: int,
        stop: Callable[[Dict[str, Any]], bool],
        client: Optional["r1client.Client"] = None,
        timeout: float = WAIT,
    ) -> List[Dict[str, Any]]:
        """The records of a session from `since_seq` up to the first for which `stop`
        is true, through `follow`."""
        out = []
        for rec in (client or self.client).follow(session_id, since_seq, timeout=timeout):
            out.append(rec)
            if stop(rec):
                return out
        raise AssertionError("follow ended")  # follow never ends by itself


def is_reply(rec: Dict[str, Any], text: Optional[str] = None) -> bool:
    """An assistant message with text (optionally exactly `text`)."""
    if rec["kind"] != "session.message" or rec["data"].get("role") != "assistant":
        return False
    got = rec["data"].get("text") or ""
    return bool(got) and (text is None or got == text)


def stop_daemon(home: Path) -> None:
    """Shuts down the daemon of `home`, if one is registered, and waits for it to exit."""
    try:
        reg = r1client.discover(home)
    except r1client.R1Error:
        reg = None
    if not reg:
        return
    r1(home, "ctl", "--no-spawn", "shutdown")
    pid = int(reg.get("pid", 0))
    if pid:
        try:
            wait_for(f"daemon {pid} to exit", lambda: pid_gone(pid))
        except AssertionError:
            os.kill(pid, 9)


class SocketRelay:
    """A unix socket at `path` whose connections are relayed to `target`: what
    `ssh -L /tmp/r1.sock:/home/me/.r1/r1.sock host` gives a local client."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = str(path)
        self.target = target
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self.listener.listen(16)
        self.connections = 0
        self._stop = False
        self._live: List[socket.socket] = []
        # Connections whose relaying is stopped: they stay open and carry nothing,
        # like a forwarded connection whose far end vanished without a FIN.
        self._stalled: set = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.target)
            except OSError:
                conn.close()
                continue
            self._live += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def drop_all(self) -> None:
        """Resets every relayed connection (an SSH connection that went away)."""
        for s in self._live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stall_all(self) -> None:
        """Stops relaying on every current connection, leaving them open."""
        self._stalled.update(self._live)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if src in self._stalled or dst in self._stalled:
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Pass the end on; the other direction's pump closes the other socket.
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            src.close()

    def close(self) -> None:
        self._stop = True
        self.drop_all()
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def seqs(records: Iterator[Dict[str, Any]]) -> List[int]:
    return [r["seq"] for r in records]
