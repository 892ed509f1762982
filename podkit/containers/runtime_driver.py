"""The container service's view of the runtime layer (``podkit.runtime.engine.Runtime``).

A thin adapter: it adds a hook run between conmon's ``create`` and ``runc start``
(so an attached ``run`` is connected before the first byte of output), the exit
code together with the OOM flag, attach through sockets whose path is longer than
``sun_path`` allows, stats read through ``runc events``, and exec sessions in the
shape the API's stdio pump expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers.process_root import ProcessRoot
from podkit.errors import Conflict, Internal, NotFound
from podkit.runtime.runc import runtime_error_message

if TYPE_CHECKING:
    from podkit.runtime.conmon_attach import AttachSession
    from podkit.runtime.engine import Runtime
    from podkit.runtime.exec import ExecProcess
    from podkit.runtime.runc import OCIRuntime

log = logging.getLogger(__name__)

CreatedHook = Callable[[str], Awaitable[None]]


class RuntimeDriver:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._created: dict[str, CreatedHook] = {}

    @property
    def oci(self) -> OCIRuntime:
        return self.rt.oci

    def on_created(self, cid: str, hook: CreatedHook | None) -> None:
        """Run ``hook`` right after conmon reports the container created (before start)."""
        if hook is None:
            self._created.pop(cid, None)
        else:
            self._created[cid] = hook

    async def create(
        self,
        cid: str,
        name: str,
        bundle: Path,
        *,
        log_path: str,
        log_size_max: int,
        terminal: bool,
        stdin: bool,
        leave_stdin_open: bool = False,
        spec: dict[str, Any] | None = None,
    ) -> int:
        pid = await self.rt.create(
            cid,
            bundle,
            name=name,
            log_path=log_path,
            log_size_max=log_size_max,
            terminal=terminal,
            stdin=stdin,
            leave_stdin_open=leave_stdin_open,
            spec=spec,
        )
        hook = self._created.pop(cid, None)
        if hook is not None:
            await hook(cid)
        return pid

    async def start(self, cid: str) -> None:
        # Straight to `runc start`: the container was created a moment ago by us, so the
        # runtime's extra `runc state` check would only cost a process spawn.
        await self.rt.oci.start(cid, self.rt.created_pid(cid))

    def has_state(self, cid: str) -> bool:
        """Whether the runtime still holds anything of this container (conmon files)."""
        return self.rt.paths(cid).dir.exists()

    async def delete(self, cid: str, force: bool = False) -> None:
        await self.rt.delete(cid, force=force)

    def forget(self, cid: str) -> None:
        self._created.pop(cid, None)

    async def kill(self, cid: str, sig: int, all: bool = False) -> None:
        await self.rt.kill(cid, int(sig), all=all)

    async def pause(self, cid: str) -> None:
        await self.rt.pause(cid)

    async def resume(self, cid: str) -> None:
        await self.rt.resume(cid)

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        await self.rt.update(cid, resources)

    async def ps(self, cid: str) -> list[int]:
        return await self.rt.ps(cid)

    async def state(self, cid: str) -> dict[str, Any] | None:
        return await self.rt.state(cid)

    def init_start(self, cid: str, pid: int) -> int | None:
        """The start time recorded at create for the container's init ``pid``."""
        return self.rt.init_start(cid, pid)

    def process(self, cid: str, pid: int) -> ProcessRoot:
        """The container's init as the process to check before reaching it by pid
        (process_root.py): ``pid`` with the start time recorded at create."""
        start = self.rt.init_start(cid, pid)
        return ProcessRoot(pid, start, None if start is not None else self.rt.live_conmon(cid))

    def conmon_pid(self, cid: str) -> int | None:
        return self.rt.conmon_pid(cid)

    def conmon_alive(self, cid: str) -> bool:
        return self.rt.conmon_alive(cid)

    async def wait_exit(self, cid: str) -> None:
        """Return once the container has ended (conmon wrote its exit file, or is gone)."""
        with contextlib.suppress(NotFound):
            await self.rt.wait(cid)

    async def exit_status(self, cid: str) -> tuple[int | None, float | None, bool]:
        """(exit code, finished at, OOM-killed)."""
        got = self.rt.exit_status(cid)
        oom = False
        try:
            oom = self.rt.oom_killed(cid)
        except OSError as e:  # its files unreadable: the exit stands, without the OOM flag
            log.warning("container %s: cannot tell whether it was OOM-killed: %r", cid[:12], e)
        if got is None:
            return None, None, oom
        return got[0], got[1], oom

    async def attach(self, cid: str) -> AttachSession:
        bundle = self.rt.bundle(cid)
        if bundle is None:
            raise Conflict(f"container {cid[:12]} is not running")
        return await self.rt.attach(cid)

    async def resize(self, cid: str, h: int, w: int) -> None:
        await self.rt.resize(cid, h, w)

    async def reopen_log(self, cid: str) -> None:
        await self.rt.reopen_log(cid)

    async def stats(self, cid: str) -> dict[str, Any]:
        """Usage from the container's cgroup files (v1 or v2); `runc events --stats` when the
        runtime does not know the cgroup."""
        cg = self.rt.cgroup_path(cid) if hasattr(self.rt, "cgroup_path") else None
        if cg:
            try:
                raw = await asyncio.to_thread(self.rt.cgroups.stats, cg)
            except Exception as e:  # noqa: BLE001 - fall back to asking runc
                log.debug("stats of %s: cgroup %s unreadable (%r): asking runc", cid[:12], cg, e)
                raw = None
            if raw and (raw.get("pids") or {}).get("current") is not None:
                return from_cgroup_stats(raw)
        rc, out, err = await self.rt.oci.run("events", "--stats", cid, check=False)
        if rc != 0:
            msg = runtime_error_message(err.decode(errors="replace"))
            if "not running" in msg or "does not exist" in msg:
                raise Conflict(f"container {cid[:12]} is not running")
            raise Internal(f"stats: {msg}")
        return parse_runc_stats((json.loads(out) or {}).get("data") or {})

    async def exec(
        self,
        cid: str,
        process: dict[str, Any],
        *,
        tty: bool,
        stdin: bool,
        console_size: tuple[int, int] | None = None,
    ) -> ExecSessionIO:
        # The tty starts at the client's size: a resize sent afterwards would race
        # the first thing the program draws.
        ep = await self.rt.exec(cid, process, stdin=stdin, console_size=console_size if tty else None)
        return ExecSessionIO(ep)


class ExecSessionIO:
    """The runtime's exec process as the API's stdio session (stream ids, async calls)."""

    def __init__(self, ep: ExecProcess) -> None:
        self.ep = ep
        self.pid = getattr(ep, "pid", 0)

    async def read(self) -> tuple[int, bytes] | None:
        item = await self.ep.read()
        if item is None:
            return None
        name, data = item
        return (2 if name == "stderr" else 1), data

    async def write(self, data: bytes) -> None:
        with contextlib.suppress(Conflict, ConnectionResetError, BrokenPipeError):
            await self.ep.write(data)

    async def close_stdin(self) -> None:
        self.ep.close_stdin()

    async def resize(self, h: int, w: int) -> None:
        self.ep.resize(h, w)

    async def close(self) -> None:
        """The client went away: the process keeps running (reaped by wait)."""

    async def wait(self) -> int:
        return await self.ep.wait()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """End the process (the CRI's ExecSync when its timeout expires)."""
        self.ep.kill(sig)


def parse_runc_stats(data: dict[str, Any]) -> dict[str, Any]:
    """``runc events --stats`` data (cgroup v1 or v2 alike) → podkit's stats fields."""
    mem = data.get("memory") or {}
    usage = (mem.get("usage") or {}).get("usage", 0)
    raw = mem.get("raw") or {}
    # docker subtracts the inactive page cache (v1 total_inactive_file / v2 inactive_file).
    cache = raw.get("total_inactive_file", raw.get("inactive_file", 0))
    limit = (mem.get("usage") or {}).get("limit", 0)
    if limit >= (1 << 62):
        limit = 0
    rd = wr = 0
    for e in (data.get("blkio") or {}).get("ioServiceBytesRecursive") or []:
        op = str(e.get("op", "")).lower()
        if op == "read":
            rd += int(e.get("value", 0))
        elif op == "write":
            wr += int(e.get("value", 0))
    return {
        "cpu_usage": int(((data.get("cpu") or {}).get("usage") or {}).get("total", 0)),
        "memory_usage": max(0, int(usage) - int(cache)),
        "memory_limit": int(limit),
        "memory_max_usage": int((mem.get("usage") or {}).get("max", 0)),
        "pids": int((data.get("pids") or {}).get("current", 0)),
        "block_read": rd,
        "block_write": wr,
    }


def from_cgroup_stats(raw: dict[str, Any]) -> dict[str, Any]:
    """The runtime's ``CgroupManager.stats`` → podkit's stats fields."""
    cpu, mem = raw.get("cpu") or {}, raw.get("memory") or {}
    blk, pids = raw.get("blkio") or {}, raw.get("pids") or {}
    return {
        "cpu_usage": int(cpu.get("usage_ns") or 0),
        "memory_usage": int(mem.get("working_set") or 0),
        "memory_limit": int(mem.get("limit") or 0),
        "memory_max_usage": int(mem.get("max_usage") or 0),
        "pids": int(pids.get("current") or 0),
        "block_read": int(blk.get("read_bytes") or 0),
        "block_write": int(blk.get("write_bytes") or 0),
    }
