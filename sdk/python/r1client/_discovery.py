"""Discovery: where the state directory is, and reading `daemon.json` and `token` only
when they are private to the user (the same checks as the Rust client's
`r1_client::discovery`)."""

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ._errors import UnreachableError, UntrustedError

PathLike = Union[str, "os.PathLike[str]"]


def default_home() -> Path:
    """`$R1_HOME`, else `~/.r1`."""
    home = os.environ.get("R1_HOME")
    if home:
        return Path(home)
    return Path(os.environ.get("HOME") or "/") / ".r1"


def check_home(home: Path) -> None:
    """Refuses a state directory that is a symlink, someone else's, or open to others.
    A directory that does not exist yet is fine (connect-or-spawn creates it)."""
    try:
        st = os.lstat(home)
    except FileNotFoundError:
        return
    except OSError as e:
        raise UntrustedError(f"cannot stat {home}: {e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedError(f"state dir {home} is a symlink; point R1_HOME at the real directory")
    if st.st_uid != os.geteuid():
        raise UntrustedError(
            f"state dir {home} is owned by uid {st.st_uid}, not you (uid {os.geteuid()}); "
            "use a directory you own"
        )
    if st.st_mode & 0o077:
        raise UntrustedError(
            f"state dir {home} has mode {st.st_mode & 0o777:o}; fix it with `chmod 700 {home}`"
        )


def read_private(path: Path) -> Optional[bytes]:
    """The bytes of `path` when it is a regular file (not a symlink) owned by the user
    with no group or other permission bits; None when it does not exist.

    The file is opened with O_NOFOLLOW and checked through the open descriptor, so it
    cannot be swapped for a symlink between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            # O_NOFOLLOW on a symlink: report it like any other untrusted file.
            st = os.lstat(path)
            raise UntrustedError(_refusal(path, st.st_mode, st.st_uid, "it is a symlink")) from None
        raise UntrustedError(f"cannot open {path}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise UntrustedError(_refusal(path, st.st_mode, st.st_uid, None))
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _refusal(path: Path, mode: int, uid: int, why: Optional[str]) -> str:
    what = f"{why}; " if why else ""
    return (
        f"refusing {path}: it must be a regular file owned by uid {os.geteuid()} with mode 0600 "
        f"({what}it is mode {mode & 0o777:o}, uid {uid}); remove it and start the daemon again"
    )


def discover(home: Path) -> Optional[Dict[str, Any]]:
    """The registration in `home/daemon.json` (id, pid, version, protocol, url, sock,
    ...), or None when there is none or it cannot be parsed (a daemon mid-write)."""
    raw = read_private(Path(home) / "daemon.json")
    if raw is None:
        return None
    try:
        reg = json.loads(raw)
    except ValueError:
        return None
    return reg if isinstance(reg, dict) else None


def read_token(home: Path) -> str:
    """The token in `$R1_TOKEN_FILE` when set (as the `r1` CLI reads it, for a daemon
    reached through a forwarded socket), else in `home/token`."""
    env = os.environ.get("R1_TOKEN_FILE")
    path = Path(env) if env else Path(home) / "token"
    raw = read_private(path)
    if raw is None:
        if env:
            raise UnreachableError(f"no token at {path} (R1_TOKEN_FILE)")
        raise UnreachableError(f"no token in {home}; start the daemon with `r1 serve`")
    return raw.decode("utf-8", "replace").strip()


def tcp_listener_owned_by(port: int, uid: int) -> bool:
    """Whether the loopback TCP listener on `port` belongs to `uid`, read from
    `/proc/net/tcp{,6}` (Linux). The token is sent only to a listener of the user's
    own: another user's process may have taken the port over. Raises
    `UnreachableError` when nothing listens there (or the tables cannot be read)."""
    found = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # Column 3 is the socket state; 0A is LISTEN. Column 7 is the owner's uid.
            if len(cols) < 8 or cols[3] != "0A":
                continue
            _, _, hexport = cols[1].rpartition(":")
            try:
                if int(hexport, 16) != port:
                    continue
            except ValueError:
                continue
            found = True
            if cols[7] != str(uid):
                return False
    if not found:
        raise UnreachableError(f"nothing listens on port {port}")
    return True
