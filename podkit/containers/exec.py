"""Exec sessions: extra processes in a running container (``runc exec`` from the daemon).

A session is created (``exec_create``), then started attached (``exec_attach``, the
API pumps its stdio over a WebSocket) or detached; its exit code stays inspectable for
a while after it ended. Sessions live in memory: like docker's, they do not survive a
daemon restart (the processes themselves are children of the daemon's ``runc exec``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from podkit.containers.attach import check_size
from podkit.containers.options import merge_env, parse_env
from podkit.containers.rootfs import resolve_user
from podkit.errors import CannotExecute, CommandNotFound, Conflict, InvalidArgument, NotFound, PodkitError

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.containers.runtime_driver import ExecSessionIO

log = logging.getLogger(__name__)


@dataclass
class ExecSession:
    id: str
    container_id: str
    namespace: str
    cmd: list[str]
    tty: bool
    stdin: bool
    env: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    privileged: bool = False
    console_size: tuple[int, int] | None = None  # (height, width) of the tty at start
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    created: float = field(default_factory=time.time)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    session: ExecSessionIO | None = None  # the runtime's I/O of the running process (for resize)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "container_id": self.container_id,
            "cmd": self.cmd,
            "tty": self.tty,
            "stdin": self.stdin,
            "running": self.running,
            "exit_code": self.exit_code,
            "pid": self.pid,
            "user": self.user,
            "workdir": self.workdir,
            "env": self.env,
        }


class Execs:
    """The exec sessions of all containers (``ContainerService.exec_*`` delegates here)."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self.sessions: dict[str, ExecSession] = {}

    async def create(self, ns: str, ref: str, body: dict[str, Any]) -> ExecSession:
        ctx = self.ctx
        rec = ctx.resolve(ns, ref)
        if rec.state != "running":
            st = None
            if rec.state == "created":  # started a moment ago, record not updated yet
                try:
                    st = await ctx.rt.state(rec.id)
                except PodkitError as e:
                    log.debug("exec in %s: no runtime state: %s", rec.id[:12], e.message)
            if not st or st.get("status") != "running":
                raise Conflict(
                    f"container {rec.name} is not running"
                    if rec.state != "paused"
                    else f"container {rec.name} is paused: unpause it first"
                )
        ex = ExecSession(
            id=secrets.token_hex(32),
            container_id=rec.id,
            namespace=ns,
            cmd=_command(body.get("cmd")),
            tty=bool(body.get("tty")),
            stdin=bool(body.get("stdin")),
            env=parse_env(body.get("env")),
            user=_text(body.get("user"), "user"),
            workdir=_text(body.get("workdir"), "workdir"),
            privileged=bool(body.get("privileged")),
            console_size=_console_size(body.get("console_size")),
        )
        if ex.workdir and not ex.workdir.startswith("/"):
            raise InvalidArgument(f"invalid working directory {ex.workdir!r}: must be absolute")
        self._forget_old()
        self.sessions[ex.id] = ex
        ctx.publish(ns, "container", "exec_create", rec.id, execID=ex.id, cmd=" ".join(ex.cmd))
        return ex

    def _forget_old(self, keep: float = 300.0) -> None:
        """Ended sessions stay inspectable for a while, then go (as docker's do)."""
        now = time.time()
        for k, e in list(self.sessions.items()):
            ended = e.exit_code is not None and not e.running
            if (ended and now - e.created > keep) or self.ctx.store.get(e.container_id) is None:
                del self.sessions[k]

    def get(self, ns: str, eid: str) -> ExecSession:
        ex = self.sessions.get(eid)
        if ex is None:
            matches = [e for k, e in self.sessions.items() if k.startswith(eid)] if eid else []
            ex = matches[0] if len(matches) == 1 else None
        if ex is None or ex.namespace != ns:
            raise NotFound(f"no such exec session: {eid}")
        return ex

    async def _process(self, ex: ExecSession) -> dict[str, Any]:
        """The OCI process of the session: the container's, with the session's changes."""
        rec = self.ctx.store.get(ex.container_id)
        if rec is None or rec.state not in ("running", "created"):
            raise Conflict("container is not running")
        bundle = self.ctx.bundle(rec.id)
        spec = json.loads((bundle / "config.json").read_text())
        p = dict(spec["process"])
        p["args"] = ex.cmd
        p["terminal"] = ex.tty
        p.pop("consoleSize", None)
        env = merge_env(p.get("env") or [], ex.env)
        p["env"] = env
        if ex.workdir:
            p["cwd"] = ex.workdir
        if ex.user:
            u = await asyncio.to_thread(resolve_user, bundle / "rootfs", ex.user)
            p["user"] = {"uid": u[0], "gid": u[1], **({"additionalGids": u[2]} if u[2] else {})}
            p["env"] = [e for e in env if not e.startswith("HOME=")] + [f"HOME={u[3]}"]
        if ex.privileged:
            from podkit.runtime.spec import ALL_CAPS

            caps = list(ALL_CAPS)
            p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        return p

    async def attach(self, ns: str, eid: str) -> ExecSessionIO:
        ex = self.get(ns, eid)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"exec session {eid[:12]} has already been started")
        process = await self._process(ex)
        ex.running = True
        try:
            sess = await self.ctx.rt.exec(
                ex.container_id, process, tty=ex.tty, stdin=ex.stdin, console_size=ex.console_size
            )
        except BaseException as e:
            ex.running = False
            ex.exit_code = e.exit_code if isinstance(e, CommandNotFound | CannotExecute) else 126
            ex.done.set()
            if isinstance(e, NotFound):  # it ended a moment ago
                raise Conflict("container is not running") from None
            raise
        ex.pid = sess.pid
        ex.session = sess
        self.ctx.publish(ns, "container", "exec_start", ex.container_id, execID=ex.id)
        self.ctx.spawn(self._reap(ex, sess))
        return sess

    async def _reap(self, ex: ExecSession, sess: ExecSessionIO) -> None:
        try:
            code = await sess.wait()
        except Exception as e:  # noqa: BLE001 - the process is gone either way: 126, logged
            log.warning("exec %s in %s: waiting for its exit failed: %r", ex.id[:12], ex.container_id[:12], e)
            code = 126
        ex.exit_code = code
        ex.running = False
        ex.session = None
        ex.done.set()
        self.ctx.publish(ex.namespace, "container", "exec_die", ex.container_id, execID=ex.id, exitCode=code)

    async def wait(self, ns: str, eid: str) -> int:
        ex = self.get(ns, eid)
        await ex.done.wait()
        return ex.exit_code if ex.exit_code is not None else -1

    async def start_detached(self, ns: str, eid: str) -> None:
        sess = await self.attach(ns, eid)

        # Nobody reads its output: drain it so the process never blocks on a full pipe.
        async def drain() -> None:
            try:
                while await sess.read() is not None:
                    pass
            except (OSError, PodkitError) as e:  # the process's streams closed under us
                log.debug("exec %s: draining its output ended: %r", eid[:12], e)

        self.ctx.spawn(drain())

    async def resize(self, ns: str, eid: str, h: int, w: int) -> None:
        check_size(h, w)
        ex = self.get(ns, eid)
        if ex.session is not None:
            await ex.session.resize(h, w)


def _command(cmd: object) -> list[str]:
    if isinstance(cmd, str):
        try:
            cmd = shlex.split(cmd)
        except ValueError as e:  # an unclosed quote
            raise InvalidArgument(f"invalid exec command: {e}") from None
    if not cmd or not isinstance(cmd, list):
        raise InvalidArgument("exec needs a command")
    return [str(c) for c in cmd]


def _text(v: object, what: str) -> str | None:
    if v in (None, ""):
        return None
    if not isinstance(v, str):
        raise InvalidArgument(f"exec {what} must be a string")
    return v


def _console_size(size: object) -> tuple[int, int] | None:
    if size is None:
        return None
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(x, int) and 0 < x < 65536 for x in size)
    ):
        raise InvalidArgument("console_size must be [height, width], each 1-65535")
    return (size[0], size[1])
