"""The checks Exec, Attach and PortForward share before the streaming server hands
out a URL."""

from __future__ import annotations

from podkit.cri.context import CRI, StreamingURLs
from podkit.cri.errors import FailedPrecondition
from podkit.errors import InvalidArgument, Unavailable


def server(cri: CRI) -> StreamingURLs:
    if cri.streaming is None:
        raise Unavailable("the CRI streaming server is not running")
    return cri.streaming


def check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout or stderr must be set")
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be set (a terminal merges them)")


def running_container(cri: CRI, container_id: str) -> str:
    rec = cri.container(container_id)
    if rec.state not in ("running",):
        raise FailedPrecondition(f"container {rec.id} is {rec.state}, not running")
    return rec.id
