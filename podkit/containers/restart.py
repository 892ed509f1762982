"""Restart policies, enforced by the daemon (docker's semantics).

- ``no``: never.
- ``on-failure[:N]``: when the exit code is not 0, at most N times (0: no limit).
- ``always``: whenever it stops, unless stopped by the user; also at daemon start.
- ``unless-stopped``: as always, but a container the user stopped stays stopped,
  also across a daemon restart.

Backoff doubles from 100 ms up to 1 minute, and resets when a run lasted at least
10 seconds. The restart count and the "manually stopped" flag live in the record,
so a restarted daemon resumes the policies where they were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.containers.store import Record

log = logging.getLogger(__name__)

BASE_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


def human_duration(secs: float) -> str:
    s = int(secs)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} second{'s' if s != 1 else ''}"
    m = s // 60
    if m < 60:
        return f"{m} minute{'s' if m != 1 else ''}"
    h = m // 60
    if h < 48:
        return f"{h} hour{'s' if h != 1 else ''}"
    d = h // 24
    return f"{d} days"


def should_restart(
    policy: dict[str, Any], exit_code: int | None, restart_count: int, manually_stopped: bool
) -> bool:
    name = (policy or {}).get("name", "no")
    if manually_stopped or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        if exit_code == 0:
            return False
        limit = int(policy.get("max_retries") or 0)
        return limit == 0 or restart_count < limit
    return False


class RestartManager:
    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._delay: dict[str, float] = {}

    async def on_exit(self, rec: Record) -> bool:
        """Decide on a container that just ended; True when a restart is scheduled."""
        policy = rec.config.get("restart") or {}
        if not should_restart(policy, rec.exit_code, rec.restart_count, rec.manually_stopped):
            self._delay.pop(rec.id, None)
            return False
        ran = (rec.finished_at or time.time()) - (rec.started_at or 0)
        delay = self._delay.get(rec.id, 0.0)
        delay = BASE_DELAY if ran >= RESET_AFTER or not delay else min(delay * 2, MAX_DELAY)
        self._delay[rec.id] = delay
        self.ctx.store.update(rec.id, state="restarting")
        self.ctx.changed(rec.id)
        self.schedule(rec.id, delay)
        return True

    def schedule(self, cid: str, delay: float) -> None:
        self.cancel(cid)
        self._pending[cid] = asyncio.ensure_future(self._restart_later(cid, delay))

    async def _restart_later(self, cid: str, delay: float) -> None:
        from podkit.containers.start import run

        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return
        self._pending.pop(cid, None)
        ctx = self.ctx
        rec = ctx.store.get(cid)
        if rec is None or rec.state != "restarting" or rec.manually_stopped:
            return
        async with ctx.lock(cid):
            cur = ctx.store.get(cid)
            if cur is None or cur.state != "restarting":
                return
            ctx.store.update(cid, restart_count=cur.restart_count + 1)
            try:
                await run(ctx, ctx.store.get(cid) or cur)
            except PodkitError as e:
                log.warning("restart of container %s failed: %s", cid[:12], e.message)
                if ctx.store.get(cid) is not None:
                    ctx.store.update(cid, state="exited", error=e.message)
                    ctx.changed(cid)
                    failed = ctx.store.get(cid)
                    if failed is not None and await self.on_exit(failed):
                        return
                return
        ctx.publish(rec.namespace, "container", "restart", cid, name=rec.name)

    def cancel(self, cid: str) -> None:
        t = self._pending.pop(cid, None)
        if t is not None:
            t.cancel()

    def close(self) -> None:
        for t in self._pending.values():
            t.cancel()
        self._pending.clear()
