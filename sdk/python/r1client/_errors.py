"""The errors a caller sees: one class per wire code of the error taxonomy.

Every failure is an `R1Error` carrying the wire `code` (one of the ten codes of
`r1.proto.v1`), a message for a person and the HTTP `status` it came with. Errors the
daemon answered have a status; errors this client raised itself before any answer
(an unreachable daemon, an untrusted file) have `status` None, exactly as the Rust
client maps them: unreachable is `crash_recovery`, an incompatible daemon
`schema_version`, an untrusted file or listener `permission_denied`, an unreadable
answer `internal`.
"""

from typing import Any, Dict, Optional, Type


class R1Error(Exception):
    """An error from the r1 daemon or from reaching it.

    Attributes:
        code: the wire code (`validation`, `not_found`, `conflict`, ...).
        message: what went wrong, for a person.
        status: the HTTP status of the daemon's answer; None when the client raised
            the error itself before any answer.
        envelope: the daemon's error envelope as received, when there was one.
    """

    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        envelope: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.status = status
        self.envelope = envelope

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def exit_code(self) -> int:
        """The exit code the `r1` CLI would use for this error (README, exit codes)."""
        if self.status is not None:
            return 1
        return {"schema_version": 3, "crash_recovery": 4, "permission_denied": 5}.get(self.code, 1)


class ValidationError(R1Error):
    """The request is malformed or names something invalid (400)."""

    code = "validation"


class NotFoundError(R1Error):
    """The addressed resource does not exist (404)."""

    code = "not_found"


class ConflictError(R1Error):
    """The request conflicts with the resource's state (409)."""

    code = "conflict"


class AppendOnlyViolationError(R1Error):
    """The request would rewrite append-only history (409)."""

    code = "append_only_violation"


class PermissionDeniedError(R1Error):
    """The caller is not allowed to do this (403), or a state file or listener is not
    the user's (raised by this client, status None)."""

    code = "permission_denied"


class BudgetExceededError(R1Error):
    """A configured budget or limit was exhausted (429); retry later."""

    code = "budget_exceeded"


class DeadlineError(R1Error):
    """The operation did not finish in time (504). Named so it does not shadow the
    built-in `TimeoutError`."""

    code = "timeout"


class CrashRecoveryError(R1Error):
    """The resource is unavailable while it recovers (503), or the daemon cannot be
    reached (raised by this client, status None)."""

    code = "crash_recovery"


class SchemaVersionError(R1Error):
    """The daemon speaks another protocol version (426, or found by the handshake)."""

    code = "schema_version"


class InternalError(R1Error):
    """An unexpected fault inside the daemon (500), or an answer this client cannot
    read."""

    code = "internal"


class UntrustedError(PermissionDeniedError):
    """A state file, the state directory, the socket or the TCP listener does not
    belong to the user (or is a symlink, or open to others); nothing was sent."""


class UnreachableError(CrashRecoveryError):
    """No daemon answered, and none could be started."""


class IncompatibleError(SchemaVersionError):
    """The daemon answered the handshake with another protocol id."""


class ProtocolError(InternalError):
    """The daemon sent something this client cannot read."""


_BY_CODE: Dict[str, Type[R1Error]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        NotFoundError,
        ConflictError,
        AppendOnlyViolationError,
        PermissionDeniedError,
        BudgetExceededError,
        DeadlineError,
        CrashRecoveryError,
        SchemaVersionError,
        InternalError,
    )
}

#: The ten wire codes, in the order of `r1_proto::ErrorCode`.
CODES = tuple(_BY_CODE)


def from_envelope(envelope: Dict[str, Any], status: Optional[int]) -> R1Error:
    """The error of an `{ok: false, error_code, error_message, links}` envelope, sent
    with HTTP `status` (None for one that ended an event stream)."""
    code = str(envelope.get("error_code", "internal"))
    message = str(envelope.get("error_message", ""))
    cls = _BY_CODE.get(code, R1Error)
    return cls(message, status=status, code=code, envelope=envelope)
