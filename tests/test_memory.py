"""podkitd's heap trimming (podkit/daemon/memory.py): once quiet, never while busy."""

from __future__ import annotations

import asyncio
import gc

from podkit.daemon import memory
from podkit.daemon.events import EventBus


def test_trims_once_quiet_and_not_while_activity_goes_on(monkeypatch) -> None:
    trimmed: list[float] = []
    monkeypatch.setattr(memory, "trim", lambda: trimmed.append(asyncio.get_running_loop().time()))

    async def scenario() -> None:
        keeper = memory.MemoryKeeper(quiet=0.05)
        bus = EventBus(on_publish=keeper.touch)
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Activity for 0.3 s (an event every 10 ms): no trim in the middle of it.
        while loop.time() - start < 0.3:
            bus.publish("default", "container", "start", "x")
            await asyncio.sleep(0.01)
        busy_until = loop.time()
        assert trimmed == []
        deadline = loop.time() + 5
        while not trimmed and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert len(trimmed) == 1 and trimmed[0] >= busy_until
        assert keeper.trims == 1
        # Quiet with no new activity: no more trims.
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1
        # A touch from outside the loop's thread is only counted, and arms nothing.
        await asyncio.to_thread(keeper.touch)
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1
        keeper.touch()
        keeper.close()  # at shutdown the armed timer goes
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1

    asyncio.run(scenario())


def test_the_libc_calls_run_here() -> None:
    memory.limit_arenas(memory.ARENAS)
    memory.trim()
    keeper = memory.MemoryKeeper()
    keeper.settle_start_up()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of this test process collects as before
