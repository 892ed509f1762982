"""Errors shared by every layer, the API and the SDK.

Each error carries a stable machine code (sent over the API as
``{"error": {"code": ..., "message": ...}}``), the HTTP status the daemon answers
with, and the exit code the CLI leaves with (docker's conventions: 125 for the
engine's own failures, 126 cannot execute, 127 command not found).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from typing import Any


class PodkitError(Exception):
    code = "internal"
    status = 500
    exit_code = 125

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


class InvalidArgument(PodkitError):
    code = "invalid_argument"
    status = 400


class TooLarge(InvalidArgument):
    """A request body over its route's limit (HTTP 413)."""

    code = "too_large"
    status = 413


class NotFound(PodkitError):
    code = "not_found"
    status = 404


class AlreadyExists(PodkitError):
    code = "already_exists"
    status = 409


class Conflict(PodkitError):
    """The object is in a state that forbids the operation (in use, running...)."""

    code = "conflict"
    status = 409


class Unauthorized(PodkitError):
    code = "unauthorized"
    status = 401


class Unavailable(PodkitError):
    """A dependency (registry, runtime binary, daemon) cannot be reached."""

    code = "unavailable"
    status = 503


class DigestMismatch(PodkitError):
    code = "digest_mismatch"
    status = 502


class UnsafeContent(PodkitError):
    """Content that would escape its sandbox (e.g. a layer writing outside its snapshot)."""

    code = "unsafe_content"
    status = 422


class CannotExecute(PodkitError):
    code = "cannot_execute"
    status = 400
    exit_code = 126


class CommandNotFound(PodkitError):
    code = "command_not_found"
    status = 400
    exit_code = 127


class Internal(PodkitError):
    code = "internal"
    status = 500


class NoSpace(PodkitError):
    """The filesystem under the daemon's root is full (HTTP 507, docker-like exit 1)."""

    code = "no_space"
    status = 507
    exit_code = 1


# SQLite's result code for "database or disk is full" (sqlite3.OperationalError's
# sqlite_errorcode; compared by number so this module needs no sqlite3 import).
_SQLITE_FULL = 13


def is_no_space(exc: BaseException | None) -> bool:
    """True if ``exc`` (or what caused it) is a full disk: ENOSPC/EDQUOT or SQLITE_FULL."""
    import errno

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, NoSpace):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def no_space(exc: BaseException, root: object) -> NoSpace:
    """The clear error for a full disk, naming the daemon's root."""
    if isinstance(exc, NoSpace):
        return exc
    return NoSpace(f"no space left on device under {root}: {exc}")


_BY_CODE: dict[str, type[PodkitError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        TooLarge,
        NotFound,
        AlreadyExists,
        Conflict,
        Unauthorized,
        Unavailable,
        DigestMismatch,
        UnsafeContent,
        CannotExecute,
        CommandNotFound,
        Internal,
        NoSpace,
    )
}


def from_dict(payload: object, status: int = 500) -> PodkitError:
    """Rebuild an error from the API's JSON body (used by the SDK)."""
    err = payload.get("error", {}) if isinstance(payload, dict) else {}
    cls = _BY_CODE.get(err.get("code", ""), PodkitError)
    exc = cls(err.get("message") or f"daemon answered HTTP {status}", details=err.get("details"))
    if cls is PodkitError:
        exc.status = status
    return exc
