"""Errors shared by every layer, the API and the SDK.

Each error carries a stable machine code (sent over the API as
``{"error": {"code": ..., "message": ...}}``), the HTTP status the daemon answers
with, and the exit code the CLI leaves with (docker's conventions: 125 for the
engine's own failures, 126 cannot execute, 127 command not found).
"""

from __future__ import annotations

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
