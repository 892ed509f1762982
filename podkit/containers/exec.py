"""Exec sessions: extra processes in a running container (``runc exec`` from the daemon).

A session is created (``exec_create``), then started attached (``exec_attach``, the
API pumps its stdio over a WebSocket) or detached; its exit code stays inspectable for
a while after it ended. Sessions live in memory: like docker's, they do not survive a
daemon restart (the processes themselves are children of the daemon's ``runc exec``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from podkit.containers.options import merge_env
from podkit.containers.rootfs import resolve_user
from podkit.errors import CannotExecute, CommandNotFound, Conflict, InvalidArgument, NotFound, PodkitError

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
    session: Any = None  # the runtime's I/O of the running process (for resize)

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


class ExecMixin:
    """The exec part of ContainerService (which provides store, rt, bundle, publish...)."""

    _execs: dict[str, ExecSession]
    store: Any
    rt: Any
    publish: Any

    async def exec_create(self, ns: str, ref: str, body: dict[str, Any]) -> ExecSession:
        rec = self.resolve(ns, ref)
        if rec.state != "running":
            st = None
            if rec.state == "created":  # started a moment ago, record not updated yet
                with contextlib.suppress(PodkitError):
                    st = await self.rt.state(rec.id)
            if not st or st.get("status") != "running":
                raise Conflict(
                    f"container {rec.name} is not running"
                    if rec.state != "paused"
                    else f"container {rec.name} is paused: unpause it first"
                )
        cmd = body.get("cmd")
        if isinstance(cmd, str):
            import shlex

            cmd = shlex.split(cmd)
        if not cmd or not isinstance(cmd, list):
            raise InvalidArgument("exec needs a command")
        from podkit.containers.options import parse_env

        ex = ExecSession(
            id=secrets.token_hex(32),
            container_id=rec.id,
            namespace=ns,
            cmd=[str(c) for c in cmd],
            tty=bool(body.get("tty")),
            stdin=bool(body.get("stdin")),
            env=parse_env(body.get("env")),
            user=body.get("user") or None,
            workdir=body.get("workdir") or None,
            privileged=bool(body.get("privileged")),
        )
        if ex.workdir and not ex.workdir.startswith("/"):
            raise InvalidArgument(f"invalid working directory {ex.workdir!r}: must be absolute")
        size = body.get("console_size")
        if size is not None:
            if (
                not isinstance(size, list)
                or len(size) != 2
                or not all(isinstance(x, int) and 0 < x < 65536 for x in size)
            ):
                raise InvalidArgument("console_size must be [height, width], each 1-65535")
            ex.console_size = (size[0], size[1])
        self._forget_old_execs()
        self._execs[ex.id] = ex
        self.publish(ns, "container", "exec_create", rec.id, execID=ex.id, cmd=" ".join(ex.cmd))
        return ex

    def _forget_old_execs(self, keep: float = 300.0) -> None:
        """Ended sessions stay inspectable for a while, then go (as docker's do)."""
        now = time.time()
        for k, e in list(self._execs.items()):
            ended = e.exit_code is not None and not e.running
            if (ended and now - e.created > keep) or self.store.get(e.container_id) is None:
                del self._execs[k]

    def exec_get(self, ns: str, eid: str) -> ExecSession:
        ex = self._execs.get(eid)
        if ex is None:
            matches = [e for k, e in self._execs.items() if k.startswith(eid)] if eid else []
            ex = matches[0] if len(matches) == 1 else None
        if ex is None or ex.namespace != ns:
            raise NotFound(f"no such exec session: {eid}")
        return ex

    async def _exec_process(self, ex: ExecSession) -> dict[str, Any]:
        rec = self.store.get(ex.container_id)
        if rec is None or rec.state not in ("running", "created"):
            raise Conflict("container is not running")
        spec = json.loads((self.bundle(rec.id) / "config.json").read_text())
        p = dict(spec["process"])
        p["args"] = ex.cmd
        p["terminal"] = ex.tty
        p.pop("consoleSize", None)
        env = merge_env(p.get("env") or [], ex.env)
        p["env"] = env
        if ex.workdir:
            p["cwd"] = ex.workdir
        if ex.user:
            u = await asyncio.to_thread(resolve_user, self.bundle(rec.id) / "rootfs", ex.user)
            p["user"] = {"uid": u[0], "gid": u[1], **({"additionalGids": u[2]} if u[2] else {})}
            p["env"] = [e for e in env if not e.startswith("HOME=")] + [f"HOME={u[3]}"]
        if ex.privileged:
            from podkit.runtime.spec import ALL_CAPS

            caps = list(ALL_CAPS)
            p["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        return p

    async def exec_attach(self, ns: str, eid: str) -> Any:
        ex = self.exec_get(ns, eid)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"exec session {eid[:12]} has already been started")
        process = await self._exec_process(ex)
        ex.running = True
        try:
            sess = await self.rt.exec(
                ex.container_id, process, tty=ex.tty, stdin=ex.stdin, console_size=ex.console_size
            )
        except BaseException as e:
            ex.running = False
            ex.exit_code = e.exit_code if isinstance(e, CommandNotFound | CannotExecute) else 126
            ex.done.set()
            if isinstance(e, NotFound):  # it ended a moment ago
                raise Conflict("container is not running") from None
            raise
        ex.pid = getattr(sess, "pid", 0)
        ex.session = sess
        self.publish(ns, "container", "exec_start", ex.container_id, execID=ex.id)

        async def reap() -> None:
            try:
                code = await sess.wait()
            except Exception as e:
                log.debug("exec %s: %s", ex.id[:12], e)
                code = 126
            ex.exit_code = code
            ex.running = False
            ex.session = None
            ex.done.set()
            self.publish(ns, "container", "exec_die", ex.container_id, execID=ex.id, exitCode=code)

        self._spawn(reap())
        return sess

    async def exec_wait(self, ns: str, eid: str) -> int:
        ex = self.exec_get(ns, eid)
        await ex.done.wait()
        return ex.exit_code if ex.exit_code is not None else -1

    async def exec_start_detached(self, ns: str, eid: str) -> None:
        sess = await self.exec_attach(ns, eid)
        # Nobody reads its output: drain it so the process never blocks on a full pipe.

        async def drain() -> None:
            with contextlib.suppress(Exception):
                while await sess.read() is not None:
                    pass

        self._spawn(drain())

    async def exec_resize(self, ns: str, eid: str, h: int, w: int) -> None:
        if not (0 < h < 65536 and 0 < w < 65536):
            raise InvalidArgument(f"invalid terminal size {h}x{w}: rows and columns are 1..65535")
        ex = self.exec_get(ns, eid)
        sess = getattr(ex, "session", None)
        if sess is not None:
            await sess.resize(h, w)
