"""HTTP/1.1 to the daemon over its unix socket or loopback TCP, one connection per
request (as the Rust client does): `http.client` over an AF_UNIX socket, or over TCP
after checking that the listener is the user's own."""

import errno
import http.client
import os
import socket
import struct
import sys
import time
from typing import Optional, Tuple, Union

from ._discovery import tcp_listener_owned_by
from ._errors import ProtocolError, UnreachableError, UntrustedError

#: How long a unix connect keeps trying while the daemon's listen queue is full: a
#: full queue fails a unix `connect` at once with EAGAIN (TCP would wait), and that is
#: a burst of clients, not a missing daemon.
FULL_BACKLOG_PATIENCE = 2.0


class UnixTransport:
    """The daemon's unix socket at `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def host(self) -> str:
        return "localhost"

    def __repr__(self) -> str:
        return f"UnixTransport({self.path!r})"


class TcpTransport:
    """Loopback TCP at `host:port`."""

    def __init__(self, host: str, port: int) -> None:
        self.host_name = host
        self.port = port

    def host(self) -> str:
        return f"{self.host_name}:{self.port}"

    def __repr__(self) -> str:
        return f"TcpTransport({self.host_name!r}, {self.port})"


Transport = Union[UnixTransport, TcpTransport]


def parse_url(url: str) -> TcpTransport:
    """The TCP transport of a registration's `url` (`http://127.0.0.1:PORT`)."""
    rest = url[len("http://"):] if url.startswith("http://") else None
    if not rest:
        raise ProtocolError(f"bad url in daemon.json: {url}")
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        raise ProtocolError(f"bad url in daemon.json: {url}")
    return TcpTransport(host.strip("[]"), int(port))


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process serving the other end of a unix socket."""
    if hasattr(socket, "SO_PEERCRED"):
        # struct ucred { pid_t pid; uid_t uid; gid_t gid; } on Linux.
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return int(uid)
    if sys.platform == "darwin":
        # LOCAL_PEERCRED (SOL_LOCAL = 0, option 1) gives struct xucred
        # { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }.
        raw = sock.getsockopt(0, 1, 76)
        _version, uid = struct.unpack_from("=II", raw)
        return int(uid)
    raise OSError(errno.ENOTSUP, "no way to read the peer's credentials on this platform")


class _UnixConnection(http.client.HTTPConnection):
    """`HTTPConnection` over an AF_UNIX socket whose peer must run as the user."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        deadline = time.monotonic() + FULL_BACKLOG_PATIENCE
        pause = 0.001
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self._path)
                break
            except (BlockingIOError, InterruptedError) as e:
                s.close()
                if time.monotonic() >= deadline:
                    raise UnreachableError(f"cannot connect to {self._path}: {e}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            except OSError as e:
                s.close()
                raise UnreachableError(f"cannot connect to {self._path}: {e}") from None
        try:
            uid = peer_uid(s)
        except OSError as e:
            s.close()
            raise UnreachableError(f"cannot check who serves {self._path}: {e}") from None
        if uid != os.geteuid():
            s.close()
            raise UntrustedError(
                f"the socket {self._path} is served by uid {uid}, not you; not sending the token to it"
            )
        self.sock = s


class _TcpConnection(http.client.HTTPConnection):
    """`HTTPConnection` to a loopback listener that must belong to the user."""

    def connect(self) -> None:
        if not tcp_listener_owned_by(self.port, os.geteuid()):
            raise UntrustedError(
                f"the listener on {self.host}:{self.port} does not belong to you; "
                "not sending the token to it"
            )
        try:
            super().connect()
        except OSError as e:
            raise UnreachableError(f"cannot connect to {self.host}:{self.port}: {e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def open_connection(transport: Transport, timeout: float) -> http.client.HTTPConnection:
    """A connected HTTP connection over `transport`; `UnreachableError` or
    `UntrustedError` when it cannot be made."""
    conn: http.client.HTTPConnection
    if isinstance(transport, UnixTransport):
        conn = _UnixConnection(transport.path, timeout)
    else:
        conn = _TcpConnection(transport.host_name, transport.port, timeout=timeout)
    conn.connect()
    return conn


def send(
    transport: Transport,
    method: str,
    target: str,
    body: Optional[bytes],
    headers: "dict[str, str]",
    timeout: float,
) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Sends one request and returns the connection and its response (headers read,
    body not yet). The caller closes the connection."""
    conn = open_connection(transport, timeout)
    try:
        all_headers = {"Host": transport.host(), "Accept": "application/json"}
        all_headers.update(headers)
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            all_headers["Content-Length"] = str(len(body))
        # skip_host: Host is set above, to the listener's own name (the TCP perimeter
        # pins it).
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in all_headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        return conn, conn.getresponse()
    except socket.timeout:
        # Left to the caller, which knows whether it was waiting for an answer.
        conn.close()
        raise
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        raise UnreachableError(f"the request to the daemon failed: {e}") from None
