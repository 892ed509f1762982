"""runc kill of a container that ends meanwhile: its failure is "not running" (409),
not an internal error, whatever words runc found for it (a kill --all reading the
cgroup being removed said "readdirent ...: no such file or directory"; the API fuzz
test hit it as a 500). The runc invocations are stubbed: the race cannot be staged
on demand with real runc."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from podkit.errors import Conflict, Internal
from podkit.runtime.runc import OCIRuntime

READDIR = (
    b'time="2026-12-03T16:57:50Z" level=error msg="readdirent /sys/fs/cgroup/devices/podkit/x: '
    b'no such file or directory"\n'
)


def _runtime(tmp_path: Path, status: str | None) -> OCIRuntime:
    rt = OCIRuntime("runc", tmp_path / "root")

    async def run(*args: str, check: bool = True, **_: Any) -> tuple[int, bytes, bytes]:
        assert args[0] == "kill"
        return 1, b"", READDIR

    async def state(cid: str) -> dict[str, Any] | None:
        return None if status is None else {"status": status}

    rt.run = run  # type: ignore[method-assign]
    rt.state = state  # type: ignore[method-assign]
    return rt


@pytest.mark.parametrize("status", [None, "stopped"])
def test_a_kill_failing_as_the_container_ends_is_not_running(tmp_path: Path, status: str | None) -> None:
    with pytest.raises(Conflict, match="not running"):
        asyncio.run(_runtime(tmp_path, status).kill("x", 9, all=True))


def test_a_kill_failing_on_a_running_container_stays_internal(tmp_path: Path) -> None:
    with pytest.raises(Internal, match="readdirent"):
        asyncio.run(_runtime(tmp_path, "running").kill("x", 9, all=True))
