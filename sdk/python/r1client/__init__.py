"""The Python client of the r1 daemon.

    import r1client
    c = r1client.connect_or_spawn()
    s = c.session_start(workdir="/home/me/project", engine="echo")
    sent = c.session_send(s["id"], text="hello")
    for rec in c.follow(s["id"], since_seq=sent["seq"] + 1, timeout=60):
        ...

Discovery reads `$R1_HOME/daemon.json` and `token` (default `~/.r1`) only when they
are private to the user; requests go over the unix socket (loopback TCP as an option
or fallback); every catalog operation is a typed method generated from
`docs/openapi.json`; every failure is an `R1Error` with its wire `code`.
"""

from ._client import Client, connect, connect_or_spawn, probe
from ._discovery import check_home, default_home, discover, read_token
from ._errors import (
    CODES,
    AppendOnlyViolationError,
    BudgetExceededError,
    ConflictError,
    CrashRecoveryError,
    DeadlineError,
    IncompatibleError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    R1Error,
    SchemaVersionError,
    UnreachableError,
    UntrustedError,
    ValidationError,
)
from ._http import TcpTransport, UnixTransport
from ._ops import OPERATIONS, PROTOCOL

__all__ = [
    "AppendOnlyViolationError",
    "BudgetExceededError",
    "CODES",
    "Client",
    "ConflictError",
    "CrashRecoveryError",
    "DeadlineError",
    "IncompatibleError",
    "InternalError",
    "NotFoundError",
    "OPERATIONS",
    "PROTOCOL",
    "PermissionDeniedError",
    "ProtocolError",
    "R1Error",
    "SchemaVersionError",
    "TcpTransport",
    "UnixTransport",
    "UnreachableError",
    "UntrustedError",
    "ValidationError",
    "check_home",
    "connect",
    "connect_or_spawn",
    "default_home",
    "discover",
    "probe",
    "read_token",
]
