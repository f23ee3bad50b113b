"""The client: connect (or spawn) the daemon, send catalog operations, follow a
session's records."""

import fcntl
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union
from urllib.parse import quote

from . import _http
from ._discovery import check_home, default_home, discover, read_token
from ._errors import (
    DeadlineError,
    IncompatibleError,
    ProtocolError,
    R1Error,
    UnreachableError,
    UntrustedError,
    from_envelope,
)
from ._ops import PROTOCOL, Operations
from ._sse import read_frames

PathArg = Union[str, "os.PathLike[str]"]

#: How long one probe (the handshake) may take, as in the Rust client.
PROBE_TIMEOUT = 1.0
#: How long a spawned daemon has to register and answer, as in the Rust client.
SPAWN_TIMEOUT = 5.0
#: How long one request may take by default.
REQUEST_TIMEOUT = 30.0
#: How often a waiting loop looks again (spawn lock, registration, reconnect).
POLL_INTERVAL = 0.01
#: The pause between reconnect attempts of a follower while no daemon answers.
RECONNECT_PAUSE = 0.1
#: A follower with nothing read for this long takes its stream for dead and
#: reconnects: the daemon sends a heartbeat comment every 15 s, so three missed
#: heartbeats mean the connection is gone (e.g. a forwarded socket whose far end died).
FOLLOW_IDLE_TIMEOUT = 45.0
#: How long a follower keeps trying to get a daemon back before it gives up.
FOLLOW_RECONNECT_TIMEOUT = 60.0


class Client(Operations):
    """A client of one r1 daemon. Make one with `connect()` or `connect_or_spawn()`.

    Every catalog operation is a method (`session_start`, `session_send`, ...; see
    `r1client.OPERATIONS`) that returns the decoded JSON result or raises an
    `R1Error` subclass; `follow()` iterates over a session's records.
    """

    def __init__(
        self,
        home: Path,
        transport: "_http.Transport",
        registration: Optional[Dict[str, Any]],
        *,
        token: Optional[str] = None,
        timeout: float = REQUEST_TIMEOUT,
        mode: Optional[bool] = None,
    ) -> None:
        self.home = Path(home)
        self.transport = transport
        #: The `daemon.json` this client connected to; None for an explicit socket.
        self.registration = registration
        self.timeout = timeout
        self._explicit_token = token
        self._token: Optional[str] = token
        # None: unix socket with TCP fallback; False: unix only; True: TCP only.
        self._mode = mode
        self._lock = threading.Lock()
        #: How many times `follow` has opened an event stream again after one broke.
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"Client(home={str(self.home)!r}, transport={self.transport!r})"

    # -- requests --------------------------------------------------------------------

    def _token_value(self, reload: bool) -> str:
        if self._explicit_token is not None:
            return self._explicit_token
        with self._lock:
            if reload or self._token is None:
                self._token = read_token(self.home)
            return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Dict[str, Any]] = None,
        body: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        """Sends one request to `path` (`/v1/...`) and returns the decoded JSON answer;
        an error envelope raises its `R1Error`. A 401 re-reads the token file (the token
        may have been rotated) and tries once more."""
        target = path + _query_string(query or {})
        raw = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            conn, resp = self._send(method, target, raw, headers or {}, timeout, reload=attempt == 1)
            try:
                data = resp.read()
            except socket.timeout:
                raise DeadlineError(f"no answer within {self.timeout if timeout is None else timeout:g}s") from None
            except (OSError, http.client.HTTPException) as e:
                raise UnreachableError(f"reading the answer failed: {e}") from None
            finally:
                conn.close()
            if resp.status == 401 and attempt == 0 and self._explicit_token is None:
                continue
            return _decode(resp.status, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        target: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        timeout: Optional[float],
        reload: bool,
    ) -> "tuple[http.client.HTTPConnection, http.client.HTTPResponse]":
        all_headers = {"Authorization": f"Bearer {self._token_value(reload)}"}
        all_headers.update(headers)
        t = self.timeout if timeout is None else timeout
        try:
            return _http.send(self.transport, method, target, body, all_headers, t)
        except socket.timeout:
            raise DeadlineError(f"no answer within {t:g}s") from None

    def _op(
        self,
        operation_id: str,
        method: str,
        path: str,
        path_params: Optional[Dict[str, Any]],
        query: Optional[Dict[str, Any]],
        body: Optional[Dict[str, Any]],
        headers: Optional[Dict[str, Any]],
    ) -> Any:
        for name, value in (path_params or {}).items():
            if value is None or value == "":
                raise ValueError(f"{operation_id} needs `{name}`")
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        q = {k: v for k, v in (query or {}).items() if v is not None}
        b = None if body is None else {k: v for k, v in body.items() if v is not None}
        h = {k: str(v) for k, v in (headers or {}).items() if v is not None}
        timeout = self.timeout
        # A long-poll waits `wait_ms` on the daemon before it answers.
        if isinstance(q.get("wait_ms"), int):
            timeout += q["wait_ms"] / 1000.0
        return self.request(method, path, query=q, body=b, headers=h, timeout=timeout)

    def call(self, operation_id: str, **params: Any) -> Any:
        """Calls the operation `operation_id` (`session.send`, ...) by name, with its
        parameters as keyword arguments (path parameters included)."""
        from ._ops import OPERATIONS

        if operation_id not in OPERATIONS:
            raise ValueError(f"unknown operation {operation_id!r}")
        return getattr(self, OPERATIONS[operation_id][2])(**params)

    # -- following -------------------------------------------------------------------

    def follow(
        self,
        session_id: str,
        since_seq: int = 0,
        *,
        timeout: Optional[float] = None,
        reconnect_timeout: float = FOLLOW_RECONNECT_TIMEOUT,
        idle_timeout: float = FOLLOW_IDLE_TIMEOUT,
    ) -> Iterator[Dict[str, Any]]:
        """The session's journal records from `since_seq` (inclusive) on, then live,
        each a dict (`seq`, `at`, `kind`, `lane`, `data`; `docs/events.schema.json`).

        Over the SSE stream `GET /v1/sessions/{id}/events`. When the stream breaks (the
        daemon restarts or stops, the connection drops, the daemon drops a reader that
        was too slow, or nothing, not even a heartbeat, arrives for `idle_timeout`
        seconds) it reconnects with `Last-Event-ID` set to the last seq it yielded,
        reading `daemon.json` again each time since a new daemon may have another port
        and pid. It yields every seq exactly once and in order: a record it has already
        yielded is skipped and a record past the next expected seq makes it reconnect
        from the expected one (the journal is the truth). The one exception is a
        `session.resync` record (the journal was repaired behind the reader), which is
        yielded as it is and moves the next expected seq to its `data.next_seq`.

        It runs until the caller stops iterating (closing the generator closes the
        connection). It raises the daemon's error for a request it refuses (an unknown
        session is `NotFoundError`), `UnreachableError` when no daemon answers for
        `reconnect_timeout` seconds, and `DeadlineError` once `timeout` seconds (if
        given) have passed in all.
        """
        expected = max(int(since_seq), 1)
        deadline = None if timeout is None else time.monotonic() + timeout
        down_since: Optional[float] = None
        first = True
        gaps = 0
        while True:
            wait = idle_timeout
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise DeadlineError(f"followed session {session_id} for {timeout:g}s")
            try:
                conn, resp = self._open_events(session_id, expected, first, wait)
            except R1Error as e:
                if not _retryable(e):
                    raise
                now = time.monotonic()
                down_since = now if down_since is None else down_since
                if now - down_since > reconnect_timeout:
                    raise UnreachableError(
                        f"no r1 daemon answered for {reconnect_timeout:g}s while following {session_id}: {e}"
                    ) from None
                time.sleep(RECONNECT_PAUSE)
                self._rediscover()
                continue
            if not first:
                self.reconnects += 1
            first = False
            down_since = None

            def check_deadline(conn: http.client.HTTPConnection = conn) -> None:
                # Heartbeats keep an idle stream alive, so the deadline is checked on
                # every line, not only on records.
                if deadline is None:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineError(f"followed session {session_id} for {timeout:g}s")
                _set_read_timeout(conn, min(idle_timeout, left))

            try:
                for frame in read_frames(resp, check_deadline):
                    if frame.event == "error":
                        _stream_error(frame.data)
                        break  # dropped as too slow: reconnect from the expected seq
                    try:
                        record = json.loads(frame.data)
                    except ValueError:
                        raise ProtocolError(f"an event that is not JSON: {frame.data[:200]!r}") from None
                    if record.get("kind") == "session.resync":
                        expected = int(record.get("data", {}).get("next_seq", expected))
                        yield record
                        continue
                    seq = record.get("seq")
                    if not isinstance(seq, int):
                        raise ProtocolError(f"an event without a seq: {frame.data[:200]!r}")
                    if seq < expected:
                        continue
                    if seq > expected:
                        # A gap: never pass it on; read again from the file, which the
                        # daemon replays first. A daemon that keeps skipping is broken.
                        gaps += 1
                        if gaps > 3:
                            raise ProtocolError(
                                f"the stream of {session_id} skips from seq {expected} to {seq} on every reconnect"
                            )
                        break
                    gaps = 0
                    expected += 1
                    yield record
                    check_deadline()
            except (OSError, http.client.HTTPException):
                # The stream broke (a reset, or the idle timeout): reconnect.
                pass
            finally:
                conn.close()

    def _open_events(
        self, session_id: str, next_seq: int, first: bool, timeout: float
    ) -> "tuple[http.client.HTTPConnection, http.client.HTTPResponse]":
        """Opens the event stream: `?since_seq=` on the first connect, `Last-Event-ID`
        (the last seq seen) on every reconnect."""
        path = f"/v1/sessions/{quote(session_id, safe='')}/events"
        headers = {"Accept": "text/event-stream"}
        if first:
            path += f"?since_seq={next_seq}"
        else:
            headers["Last-Event-ID"] = str(next_seq - 1)
        for attempt in (0, 1):
            conn, resp = self._send("GET", path, None, headers, timeout, reload=attempt == 1)
            if 200 <= resp.status < 300:
                return conn, resp
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise UnreachableError(f"reading the answer failed: {e}") from None
            finally:
                conn.close()
            if resp.status == 401 and attempt == 0 and self._explicit_token is None:
                continue
            _decode(resp.status, data)
            raise ProtocolError(f"the event stream answered {resp.status}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _rediscover(self) -> None:
        """Points the client at the daemon now registered (after a restart the port and
        pid may have changed). Keeps the old transport when there is none yet; with an
        explicit socket there is nothing to rediscover."""
        if self.registration is None:
            return
        try:
            found = _try_registered(self.home, self._mode, PROBE_TIMEOUT, self._explicit_token)
        except R1Error:
            return
        if found is not None:
            self.registration, self.transport = found


# -- connecting ----------------------------------------------------------------------


def connect(
    home: Optional[PathArg] = None,
    *,
    tcp: Optional[bool] = None,
    sock: Optional[PathArg] = None,
    token: Optional[str] = None,
    timeout: float = REQUEST_TIMEOUT,
    probe_timeout: float = PROBE_TIMEOUT,
) -> Client:
    """Connects to the running daemon of `home` (default `$R1_HOME`, else `~/.r1`)
    without starting one.

    `tcp`: None (default) uses the unix socket and falls back to loopback TCP when the
    socket cannot be reached; False uses only the socket; True only TCP.
    `sock` (or `$R1_SOCK`): talk to the socket at this path instead of discovering one
    (e.g. an SSH-forwarded socket); the token is `token` if given, else the file
    `home/token` (with the same trust checks as `daemon.json`).
    Raises `UntrustedError`, `UnreachableError` or `IncompatibleError`.
    """
    return _connect(home, tcp, sock, token, timeout, probe_timeout, spawn=False, r1_bin=None, spawn_timeout=0.0)


def connect_or_spawn(
    home: Optional[PathArg] = None,
    *,
    tcp: Optional[bool] = None,
    sock: Optional[PathArg] = None,
    token: Optional[str] = None,
    r1_bin: Optional[PathArg] = None,
    timeout: float = REQUEST_TIMEOUT,
    probe_timeout: float = PROBE_TIMEOUT,
    spawn_timeout: float = SPAWN_TIMEOUT,
) -> Client:
    """Connects to the daemon of `home`, starting `r1 serve` detached when none
    answers, and waits up to `spawn_timeout` seconds for it to register and answer.

    The executable is `r1_bin`, else `$R1_BIN`, else `r1` on `PATH`. Racing clients
    serialise on `home/spawn.lock` (the lock the Rust client takes), so clients
    starting together start one daemon. With `sock` (or `$R1_SOCK`) nothing is
    spawned. Other arguments as for `connect()`.
    """
    return _connect(home, tcp, sock, token, timeout, probe_timeout, spawn=True, r1_bin=r1_bin, spawn_timeout=spawn_timeout)


def _connect(
    home: Optional[PathArg],
    tcp: Optional[bool],
    sock: Optional[PathArg],
    token: Optional[str],
    timeout: float,
    probe_timeout: float,
    *,
    spawn: bool,
    r1_bin: Optional[PathArg],
    spawn_timeout: float,
) -> Client:
    home_path = Path(home) if home is not None else default_home()
    sock = sock if sock is not None else (os.environ.get("R1_SOCK") or None)
    if sock is not None:
        explicit = _http.UnixTransport(os.fspath(sock))
        probe(explicit, probe_timeout)
        client = Client(home_path, explicit, None, token=token, timeout=timeout, mode=False)
        if token is None:
            # The token is read from the state directory, so the same checks apply.
            check_home(home_path)
            client._token_value(reload=True)
        return client
    check_home(home_path)
    found = _try_registered(home_path, tcp, probe_timeout, token)
    if found is None and spawn:
        found = _spawn(home_path, tcp, probe_timeout, token, r1_bin, spawn_timeout)
    if found is None:
        raise UnreachableError(f"no r1 daemon is running for {home_path}; start one with `r1 serve`")
    reg, transport = found
    client = Client(home_path, transport, reg, token=token, timeout=timeout, mode=tcp)
    # Read (and check) the token now, so an untrusted token file is refused here with
    # a clear error rather than at the first call.
    client._token_value(reload=True)
    return client


def probe(
    transport: "_http.Transport", timeout: float = PROBE_TIMEOUT, token: Optional[str] = None
) -> Dict[str, Any]:
    """The daemon's handshake over `transport` within `timeout`, checked against the
    protocol this client speaks (`IncompatibleError` otherwise). The unix socket
    answers the handshake without a token; the TCP perimeter wants `token` for it too
    (sent only after the listener was found to be the user's)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        conn, resp = _http.send(transport, "GET", "/v1/handshake", None, headers, timeout)
        try:
            data = resp.read()
        finally:
            conn.close()
    except socket.timeout:
        raise UnreachableError(f"no handshake within {timeout * 1000:.0f} ms") from None
    except (OSError, http.client.HTTPException) as e:
        raise UnreachableError(f"the handshake failed: {e}") from None
    hs = _decode(resp.status, data)
    if not isinstance(hs, dict) or hs.get("protocol") != PROTOCOL:
        found = hs.get("protocol") if isinstance(hs, dict) else None
        raise IncompatibleError(
            f"the r1 daemon at {transport!r} speaks {found} (version {hs.get('version') if isinstance(hs, dict) else '?'}), "
            f"but this client speaks {PROTOCOL}; stop it (pid {hs.get('pid') if isinstance(hs, dict) else '?'}) "
            "or upgrade this client"
        )
    return hs


def _try_registered(
    home: Path, tcp: Optional[bool], probe_timeout: float, token: Optional[str] = None
) -> "Optional[tuple[Dict[str, Any], _http.Transport]]":
    """The registered daemon and a transport that answers, or None when there is no
    registration or it is stale. An untrusted file or an incompatible daemon raises."""
    reg = discover(home)
    if reg is None:
        return None
    candidates: List[_http.Transport] = []
    if tcp is not True and isinstance(reg.get("sock"), str):
        candidates.append(_http.UnixTransport(reg["sock"]))
    if tcp is not False and isinstance(reg.get("url"), str):
        candidates.append(_http.parse_url(reg["url"]))
    for transport in candidates:
        is_fallback = tcp is None and isinstance(transport, _http.TcpTransport)
        try:
            if isinstance(transport, _http.TcpTransport):
                probe(transport, probe_timeout, token if token is not None else read_token(home))
            else:
                probe(transport, probe_timeout)
        except UntrustedError as e:
            # The registered port now held by someone else's listener is a stale
            # registration to the fallback (nothing was sent); asked for TCP, it is
            # the refusal.
            if is_fallback and "does not belong to you" in e.message:
                continue
            raise
        except IncompatibleError:
            raise
        except R1Error:
            continue
        return reg, transport
    return None


def _spawn(
    home: Path,
    tcp: Optional[bool],
    probe_timeout: float,
    token: Optional[str],
    r1_bin: Optional[PathArg],
    spawn_timeout: float,
) -> "Optional[tuple[Dict[str, Any], _http.Transport]]":
    """Starts `r1 serve` under the spawn lock and waits for it to answer."""
    if not home.exists():
        os.makedirs(home, mode=0o700, exist_ok=True)
        check_home(home)
    deadline = time.monotonic() + spawn_timeout
    lock_fd = _take_spawn_lock(home, deadline)
    try:
        # Another client may have started the daemon while this one waited.
        found = _try_registered(home, tcp, probe_timeout, token)
        if found is not None:
            return found
        exe = _r1_executable(r1_bin)
        env = dict(os.environ, R1_HOME=str(home))
        try:
            child = subprocess.Popen(
                [exe, "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own session, so the daemon outlives this process's terminal.
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise UnreachableError(f"cannot start {exe} serve: {e}") from None
        # Reap the child when it exits so a long-lived client leaves no zombie.
        threading.Thread(target=child.wait, daemon=True).start()
        while True:
            found = _try_registered(home, tcp, probe_timeout, token)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                code = child.poll()
                status = "it is still starting" if code is None else f"it exited with {code}"
                raise UnreachableError(
                    f"started `{exe} serve` but it did not answer within {spawn_timeout * 1000:.0f} ms "
                    f"({status}); see {home / 'logs'}"
                )
            time.sleep(POLL_INTERVAL)
    finally:
        os.close(lock_fd)


def _take_spawn_lock(home: Path, deadline: float) -> int:
    """`home/spawn.lock`, locked with flock (what the Rust client's `File::try_lock`
    takes), so Python and Rust clients serialise on the same lock."""
    path = home / "spawn.lock"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise UnreachableError(f"cannot open {path}: {e}") from None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise UnreachableError(
                    "another client is starting the daemon and did not finish in time"
                ) from None
            time.sleep(POLL_INTERVAL)
        except OSError as e:
            os.close(fd)
            raise UnreachableError(f"cannot lock {path}: {e}") from None


def _r1_executable(r1_bin: Optional[PathArg]) -> str:
    if r1_bin is not None:
        return os.fspath(r1_bin)
    env = os.environ.get("R1_BIN")
    if env:
        return env
    found = shutil.which("r1")
    if found:
        return found
    raise UnreachableError("cannot find the r1 executable: pass r1_bin=, set R1_BIN, or put r1 on PATH")


# -- helpers -------------------------------------------------------------------------


def _query_string(fields: Dict[str, Any]) -> str:
    """`?k=v&...` as the Rust client writes it: strings as they are, lists of strings
    comma-separated, anything else as JSON; each part percent-encoded."""
    if not fields:
        return ""
    parts = []
    for k, v in fields.items():
        if isinstance(v, str):
            s = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            s = ",".join(v)
        else:
            s = json.dumps(v)
        parts.append(f"{quote(k, safe='')}={quote(s, safe='')}")
    return "?" + "&".join(parts)


def _decode(status: int, data: bytes) -> Any:
    """A success body as JSON, or the error envelope as its `R1Error`."""
    if 200 <= status < 300:
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise ProtocolError(f"cannot decode the answer ({status})") from None
    try:
        env = json.loads(data)
    except ValueError:
        env = None
    if isinstance(env, dict) and "error_code" in env:
        raise from_envelope(env, status)
    raise ProtocolError(f"status {status} without an error envelope", status=status)


def _retryable(e: R1Error) -> bool:
    """Whether a follower should reconnect after `e` rather than give up: the daemon
    is away or recovering, not refusing the request."""
    if isinstance(e, (UntrustedError, IncompatibleError)):
        return False
    return e.status is None or e.code == "crash_recovery"


def _stream_error(data: str) -> None:
    """Handles the `event: error` frame that ends a stream: a reader dropped as too
    slow returns (and reconnects); any other error raises."""
    try:
        payload = json.loads(data)
    except ValueError:
        raise ProtocolError(f"the event stream ended with an error: {data[:200]}") from None
    if isinstance(payload, dict) and payload.get("code") == "stream.dropped":
        return
    if isinstance(payload, dict) and "error_code" in payload:
        raise from_envelope(payload, None)
    raise ProtocolError(f"the event stream ended with an error: {data[:200]}")


def _set_read_timeout(conn: http.client.HTTPConnection, seconds: float) -> None:
    if conn.sock is not None:
        conn.sock.settimeout(max(seconds, 0.001))
