"""Waiting for a container's end: conmon watched through a pidfd (which works for a
conmon this daemon did not spawn) and its exit file read; ``stop``'s signal, then
SIGKILL to every process after the timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signal_mod
from typing import TYPE_CHECKING

from podkit.errors import Conflict, NotFound
from podkit.runtime.runc import parse_signal

if TYPE_CHECKING:
    from podkit.runtime.engine import Runtime


async def wait(rt: Runtime, cid: str, timeout: float | None = None) -> tuple[int, float]:
    """Wait until the container ended; its ``(exit code, finished_at)``."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    pidfd: int | None = None
    # checked: a pid file's number reused by another process would be waited on forever
    with contextlib.suppress(NotFound):
        pidfd = rt.open_conmon(cid)
    try:
        while True:
            st = rt.exit_status(cid)
            if st is not None:
                return st
            if pidfd is None and not rt.conmon_alive(cid):
                # conmon gone without an exit file: killed, or the host rebooted.
                st = rt.exit_status(cid)
                if st is not None:
                    return st
                raise NotFound(f"container {cid} has no monitor and no exit status")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"container {cid} still running")
            step = 0.5 if remaining is None else min(0.5, remaining)
            if pidfd is not None:
                fut: asyncio.Future[None] = loop.create_future()
                loop.add_reader(pidfd, _set_done, fut)
                try:
                    await asyncio.wait({fut}, timeout=step)
                finally:
                    loop.remove_reader(pidfd)
                if fut.done():
                    os.close(pidfd)
                    pidfd = None
                    # conmon writes the exit file before it exits
                    st = rt.exit_status(cid)
                    if st is None:
                        raise NotFound(f"container {cid}'s monitor exited without an exit status")
                    return st
            else:
                await asyncio.sleep(min(step, 0.05))
    finally:
        if pidfd is not None:
            os.close(pidfd)


async def stop(
    rt: Runtime, cid: str, signal: int | str = signal_mod.SIGTERM, timeout: float = 10.0
) -> tuple[int, float]:
    """``signal``, then SIGKILL to every process after ``timeout`` seconds; the exit status.

    A paused container is resumed after the signal so that it can act on it.
    """
    done = rt.exit_status(cid)
    if done is not None:
        return done
    st = await rt.state(cid)
    if st is None:
        raise NotFound(f"container {cid} does not exist in the runtime")
    with contextlib.suppress(Conflict):
        await rt.oci.kill(cid, parse_signal(signal))
    if st.get("status") == "paused":
        with contextlib.suppress(Conflict):
            await rt.oci.resume(cid)
    if timeout > 0:
        with contextlib.suppress(TimeoutError):
            return await wait(rt, cid, timeout=timeout)
    with contextlib.suppress(Conflict, NotFound):
        await rt.oci.kill(cid, signal_mod.SIGKILL, all=True)
    return await wait(rt, cid, timeout=30)


def _set_done(fut: asyncio.Future[None]) -> None:
    """A pidfd became readable: the process ended (once is enough)."""
    if not fut.done():
        fut.set_result(None)
