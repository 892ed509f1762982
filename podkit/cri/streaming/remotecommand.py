"""Exec and attach as the kubelet's remotecommand protocol sees them, wire-independent.

``StreamIO`` is one client connection's streams, whatever carries them (SPDY
streams, WebSocket channels); ``run_exec`` and ``run_attach`` drive podkit's
container service through it. The exit status goes back as the Kubernetes
``Status`` object kubelet sends (``status_*``); how it is written (JSON, plain
text, nothing) is the transport's business (``StreamIO.finish``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from podkit.cri.streaming.tokens import StreamRequest
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService

log = logging.getLogger(__name__)

Status = dict[str, Any]
DRAIN_TIMEOUT = 5.0  # output still in flight when the process ended


def status_success() -> Status:
    return {"metadata": {}, "status": "Success"}


def status_exit_code(code: int, cmd: list[str]) -> Status:
    # The client turns this into the command's exit code (the ExitCode cause).
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: "
        f"error executing command [{' '.join(cmd)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def status_internal(message: str) -> Status:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


class StreamIO(abc.ABC):
    """The client's side of one exec/attach: stdio, resizes, the final status."""

    def __init__(self, req: StreamRequest) -> None:
        self.req = req
        self.tty = req.tty

    @property
    @abc.abstractmethod
    def has_stdin(self) -> bool: ...

    @abc.abstractmethod
    async def read_stdin(self) -> bytes:
        """Next bytes of the client's stdin; b"" once it closed it."""

    @abc.abstractmethod
    async def write_output(self, fd: int, data: bytes) -> None:
        """Output of the process: ``fd`` 1 (stdout) or 2 (stderr); dropped if not asked for."""

    @abc.abstractmethod
    async def next_resize(self) -> tuple[int, int] | None:
        """The next terminal size the client sent, as (height, width); None when no more."""

    def pending_resize(self) -> tuple[int, int] | None:
        """A size already received and not yet taken (to start a tty at the right size)."""
        return None

    @abc.abstractmethod
    async def finish(self, status: Status) -> None:
        """Report the outcome and end the connection."""

    @abc.abstractmethod
    async def gone(self) -> None:
        """Return once the client has gone away."""


def _fd(stream: object) -> int:
    return 2 if stream in (2, "stderr") else 1


async def _pump_output(read: Callable[[], Awaitable[Any]], io: StreamIO) -> None:
    while True:
        item = await read()
        if item is None:
            return
        stream, data = item
        if data:
            await io.write_output(1 if io.tty else _fd(stream), data)


async def _pump_resizes(io: StreamIO, resize: Callable[[int, int], Awaitable[None]]) -> None:
    while (size := await io.next_resize()) is not None:
        h, w = size
        if 0 < h < 65536 and 0 < w < 65536:
            try:
                await resize(h, w)
            except PodkitError as e:  # the process may have ended a moment ago
                log.debug("resize to %dx%d: %s", h, w, e.message)


async def _cancel(*tasks: asyncio.Task[Any] | None) -> None:
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    for t in live:
        with contextlib.suppress(BaseException):
            await t


async def run_exec(containers: ContainerService, io: StreamIO) -> None:
    """``kubectl exec``: run the command, stream its stdio, report its exit code.

    If the client goes away first, the process is killed (and reaped by the exec
    machinery), as containerd does.
    """
    req = io.req
    ns = req.namespace
    try:
        ex = await containers.exec_create(
            ns, req.target, {"cmd": req.cmd, "tty": req.tty, "stdin": req.stdin}
        )
        size = io.pending_resize() if req.tty else None
        if size is not None:
            ex.console_size = size
        sess = await containers.exec_attach(ns, ex.id)
    except PodkitError as e:
        await io.finish(status_internal(f"error executing command in container: {e.message}"))
        return
    out_t = asyncio.create_task(_pump_output(sess.read, io))
    in_t = asyncio.create_task(_pump_exec_stdin(io, sess)) if io.has_stdin else None

    async def resize(h: int, w: int) -> None:
        await containers.exec_resize(ns, ex.id, h, w)

    rs_t = asyncio.create_task(_pump_resizes(io, resize)) if req.tty else None
    exit_t = asyncio.create_task(containers.exec_wait(ns, ex.id))
    gone_t = asyncio.create_task(io.gone())
    try:
        await asyncio.wait({exit_t, gone_t}, return_when=asyncio.FIRST_COMPLETED)
        if not exit_t.done():
            log.info("exec %s in %s: the client went away; killing it", ex.id[:12], req.target[:12])
            _kill(sess)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exit_t), DRAIN_TIMEOUT)
            return
        code = exit_t.result()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait({out_t, gone_t}, timeout=DRAIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if gone_t.done():
            return
        await io.finish(status_success() if code == 0 else status_exit_code(code, req.cmd))
    finally:
        if not exit_t.done():
            _kill(sess)  # cancelled ourselves (the daemon stopping): the process goes too
        await _cancel(out_t, in_t, rs_t, exit_t, gone_t)
        try:
            await _maybe_await(sess.close())
        except Exception as e:
            log.warning("streaming: closing exec session %r failed: %s", sess, e)


def _kill(sess: Any) -> None:
    """End an exec'd process whose client is gone (the exec machinery reaps it)."""
    kill = getattr(sess, "kill", None)
    if kill is None:
        return
    try:
        kill()
    except (OSError, PodkitError) as e:
        log.warning("exec session %r: cannot kill it: %s", sess, e)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _pump_exec_stdin(io: StreamIO, sess: Any) -> None:
    try:
        while data := await io.read_stdin():
            await sess.write(data)
    except (ConnectionError, PodkitError) as e:
        log.debug("exec stdin: %s", e)
        return
    await _maybe_await(sess.close_stdin())


def stdin_once(record: Any) -> bool:
    """Whether a container's stdin closes after its first attach ends (CRI stdin_once)."""
    cfg = getattr(record, "config", None) or {}
    labels = getattr(record, "labels", None) or {}
    return bool(cfg.get("stdin_once")) or str(labels.get("io.podkit.cri.stdin-once", "")).lower() == "true"


async def run_attach(containers: ContainerService, io: StreamIO) -> None:
    """``kubectl attach``: the container's own stdio until it exits or the client leaves.

    When the client closes stdin: a ``stdin_once`` container without a tty gets its
    stdin closed and the output goes on until it exits (kubelet's behaviour); any
    other attach simply ends there, the container running on.
    """
    req = io.req
    ns = req.namespace
    try:
        rec = containers.resolve(ns, req.target)
        once = stdin_once(rec)
        adapter = await containers.attach(ns, rec.id, stdin=req.stdin)
    except PodkitError as e:
        await io.finish(status_internal(f"error attaching to container: {e.message}"))
        return

    async def stdin_pump() -> bool:
        """True: the attach should end (stdin closed, not stdin_once)."""
        try:
            while data := await io.read_stdin():
                await adapter.write(data)
        except (ConnectionError, PodkitError) as e:
            log.debug("attach stdin: %s", e)
            return False
        if once and not req.tty:
            await adapter.close_stdin()
            return False
        return True

    async def resize(h: int, w: int) -> None:
        await containers.resize(ns, rec.id, h, w)

    out_t = asyncio.create_task(_pump_output(adapter.read, io))
    in_t = asyncio.create_task(stdin_pump()) if io.has_stdin else None
    rs_t = asyncio.create_task(_pump_resizes(io, resize)) if req.tty else None
    gone_t = asyncio.create_task(io.gone())
    try:
        waiting: set[asyncio.Task[Any]] = {out_t, gone_t} | ({in_t} if in_t else set())
        while True:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if out_t in done or gone_t in done:
                break
            if in_t in done and not in_t.cancelled() and in_t.exception() is None and in_t.result():
                break
        if gone_t.done():
            return
        if out_t.done() and not out_t.cancelled() and out_t.exception() is not None:
            err = out_t.exception()
            await io.finish(status_internal(f"error attaching to container: {err}"))
            return
        await io.finish(status_success())
    finally:
        await _cancel(out_t, in_t, rs_t, gone_t)
        try:
            await adapter.close()
        except Exception as e:
            log.warning("streaming: closing attach session %r failed: %s", adapter, e)
