"""Exec: create, start (detached, or hijacked with tty or multiplexed output),
inspect, resize."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from aiohttp import web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import EXEC_EXTRA, NAMESPACE, body, containers, int_arg, json_response
from podkit.dockerapi.containers import _resolve
from podkit.dockerapi.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    HijackedResponse,
    detach_sequence,
    frame,
    hijack,
    pump,
)
from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError

log = logging.getLogger(__name__)
routes = Routes()

# How long an exec's exit code may lag behind the end of its output.
_EXIT_WAIT = 10.0


@routes.post("/containers/{id}/exec")
async def exec_create(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    b = await body(request)
    cmd = b.get("Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    if rec.state == "paused":
        raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
    if rec.state != "running":
        raise Conflict(f"Container {rec.id} is not running")
    opts: dict[str, Any] = {
        "cmd": cmd,
        "tty": bool(b.get("Tty")),
        "stdin": bool(b.get("AttachStdin")),
        "env": b.get("Env") or [],
        "user": b.get("User") or None,
        "workdir": b.get("WorkingDir") or None,
        "privileged": bool(b.get("Privileged")),
    }
    size = b.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size):
        opts["console_size"] = size
    ex = await containers(request).exec_create(NAMESPACE, rec.id, opts)
    # What docker keeps per exec and podkit's session does not: the detach keys and
    # which output streams the client wants.
    extra = request.app[EXEC_EXTRA]
    for eid in [k for k in extra if not _exists(request, k)]:
        del extra[eid]  # sessions the service has forgotten
    extra[ex.id] = {
        "detach_keys": b.get("DetachKeys"),
        "stdout": b.get("AttachStdout", True),
        "stderr": b.get("AttachStderr", True),
    }
    return json_response({"Id": ex.id}, status=201)


def _exists(request: web.Request, eid: str) -> bool:
    try:
        containers(request).exec_get(NAMESPACE, eid)
        return True
    except NotFound:
        return False


def _get(request: web.Request) -> Any:
    eid = request.match_info["id"]
    try:
        return containers(request).exec_get(NAMESPACE, eid)
    except NotFound:
        raise NotFound(f"No such exec instance: {eid}") from None


class _Session:
    """The runtime's exec session with the async surface the pump uses."""

    def __init__(self, sess: Any) -> None:
        self.sess = sess

    async def read(self) -> Any:
        return await self.sess.read()

    async def write(self, data: bytes) -> None:
        await self.sess.write(data)

    async def close_stdin(self) -> None:
        r = self.sess.close_stdin()
        if inspect.isawaitable(r):
            await r


@routes.post("/exec/{id}/start")
async def exec_start(request: web.Request) -> web.StreamResponse:
    ex = _get(request)
    b = await body(request)
    svc = containers(request)
    if ex.running or ex.exit_code is not None:
        raise Conflict(f"exec {ex.id} has already been started")
    if b.get("Detach"):
        await svc.exec_start_detached(NAMESPACE, ex.id)
        return web.Response(status=200)
    extra = request.app[EXEC_EXTRA].pop(ex.id, {})
    size = b.get("ConsoleSize")
    # The 101 goes out before the process starts, as docker does it: clients that
    # read the status line through a buffered reader (docker-py) would otherwise
    # swallow the first output with it.
    conn = hijack(request, RAW_STREAM if ex.tty else MULTIPLEXED_STREAM)
    try:
        sess = await svc.exec_attach(NAMESPACE, ex.id)
    except PodkitError as e:
        with contextlib.suppress(ConnectionResetError):
            await conn.write(
                e.message.encode() + b"\n" if ex.tty else frame(STDERR, e.message.encode() + b"\n")
            )
        conn.close()
        return HijackedResponse()
    if (
        ex.tty
        and isinstance(size, list)
        and len(size) == 2
        and all(isinstance(x, int) and x > 0 for x in size)
    ):
        try:
            await svc.exec_resize(NAMESPACE, ex.id, size[0], size[1])
        except Exception as e:  # the exec still starts, at its default size
            log.warning("exec %s: the initial resize to %s failed: %s", ex.id[:12], size, e)
    try:
        how = await pump(
            conn,
            _Session(sess),
            tty=ex.tty,
            stdin=ex.stdin,
            detach_keys=detach_sequence(extra.get("detach_keys")) if ex.stdin else b"",
            stdout=bool(extra.get("stdout", True)),
            stderr=bool(extra.get("stderr", True)),
            ended=svc.exec_wait(NAMESPACE, ex.id),
        )
        if how == "ended":
            # The client inspects the exit code right after the stream ends: have it.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(svc.exec_wait(NAMESPACE, ex.id), _EXIT_WAIT)
    finally:
        conn.close()
    return HijackedResponse()


@routes.get("/exec/{id}/json")
async def exec_inspect(request: web.Request) -> web.StreamResponse:
    ex = _get(request)
    return json_response(
        {
            "CanRemove": False,
            "ContainerID": ex.container_id,
            "DetachKeys": "",
            "ExitCode": ex.exit_code,
            "ID": ex.id,
            "OpenStderr": True,
            "OpenStdin": ex.stdin,
            "OpenStdout": True,
            "ProcessConfig": {
                "arguments": ex.cmd[1:],
                "entrypoint": ex.cmd[0] if ex.cmd else "",
                "privileged": ex.privileged,
                "tty": ex.tty,
                "user": ex.user or "",
            },
            "Running": ex.running,
            "Pid": ex.pid,
        }
    )


@routes.post("/exec/{id}/resize")
async def exec_resize(request: web.Request) -> web.StreamResponse:
    ex = _get(request)
    h, w = int_arg(request, "h", 0) or 0, int_arg(request, "w", 0) or 0
    if h and w:
        await containers(request).exec_resize(NAMESPACE, ex.id, h, w)
    return web.Response(status=200)
