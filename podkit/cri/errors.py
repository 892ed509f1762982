"""podkit's errors as gRPC status codes, and the few CRI-only ones."""

from __future__ import annotations

import grpc

from podkit.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PodkitError,
    Unauthorized,
    Unavailable,
)


class Unimplemented(PodkitError):
    code = "unimplemented"


class FailedPrecondition(PodkitError):
    code = "failed_precondition"


class DeadlineExceeded(PodkitError):
    code = "deadline_exceeded"


_CODES: list[tuple[type[PodkitError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
]


def status_code(e: PodkitError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(e, cls):
            return code
    return grpc.StatusCode.UNKNOWN
