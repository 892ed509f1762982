"""A pid podkitd learned from a file is signalled only while it is still the process it
was learned for (podkit/runtime/proc_identity.py): conmon's (after a restart too), the
container's init, an exec's, the processes of a cgroup being removed.

The kernel cannot be made to hand a given pid to a new process on a shared host, so a
reuse is staged as podkitd sees one: the file (or the number kept) names a live process
that is not the one meant, an unrelated ``sleep`` of the test. Every such test fails on
the code that signalled the number (that ``sleep`` was killed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit.containers.process_root import ProcessRoot, open_pidfd, open_process_root
from podkit.errors import NotFound
from podkit.runtime import proc_identity
from tests.helpers import Daemon, wait_for


def _ticks_now() -> int:
    """Clock ticks since boot, the unit of /proc/<pid>/stat's start time."""
    with open("/proc/uptime") as f:
        return int(float(f.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process: what a reused pid would name. The test's own processes
    start in a later clock tick than it (start times are ticks: two processes started
    within one share theirs, which a real reuse, a whole pid space later, never does)."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        began = proc_identity.start_time(proc.pid)
        wait_for(lambda: _ticks_now() > began + 1, what="the next clock tick")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name: [0] state, [1] parent."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _gone(pid: int) -> bool:
    try:
        return _stat(pid)[0] == "Z"
    except OSError:
        return True


def _edit_meta(rt: Any, cid: str, **changes: Any) -> None:
    """meta.json as another podkitd wrote it (a key set to None is dropped)."""
    path = rt.paths(cid).dir / "meta.json"
    meta = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    path.write_text(json.dumps(meta))


OLD_META = {"init_pid": None, "init_start": None, "conmon_pid": None, "conmon_start": None}


def test_create_records_conmon_and_init_start_times(rt: Any, bundle: Any) -> None:
    async def go() -> None:
        pid = await rt.create("st1", bundle("st1", ["sleep", "100"]))
        meta = json.loads((rt.paths("st1").dir / "meta.json").read_text())
        conmon = rt.conmon_pid("st1")
        assert meta["init_pid"] == pid and meta["init_start"] == proc_identity.start_time(pid)
        assert meta["conmon_pid"] == conmon and meta["conmon_start"] == proc_identity.start_time(conmon)
        assert rt.live_conmon("st1") == conmon
        await rt.delete("st1", force=True)

    asyncio.run(go())


def test_reused_conmon_pid_is_not_signalled(
    rt: Any, bundle: Any, stranger: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """conmon died and its number went to another process: the removal must not kill
    that process (it waited 10 s on it and SIGKILLed it)."""

    async def go() -> None:
        await rt.create("rc1", bundle("rc1", ["sleep", "1000"]))
        await rt.start("rc1")
        conmon = rt.conmon_pid("rc1")
        os.kill(conmon, signal.SIGKILL)
        wait_for(lambda: _gone(conmon), what="conmon to go")
        # the number as recorded (pid file and meta.json) now the stranger's
        rt.paths("rc1").conmon_pidfile.write_text(str(stranger.pid))
        _edit_meta(rt, "rc1", conmon_pid=stranger.pid)
        assert not rt.conmon_alive("rc1")
        assert not rt.signal_conmon("rc1", signal.SIGKILL)
        with pytest.raises(NotFound):
            rt.open_conmon("rc1")
        with pytest.raises(NotFound):  # nothing to wait on: not the stranger
            await rt.wait("rc1", timeout=5)
        await rt.delete("rc1", force=True)

    with caplog.at_level(logging.WARNING):
        asyncio.run(go())
    assert _alive(stranger)
    assert "now belongs to another process" in caplog.text


def test_conmon_of_an_older_podkitd_is_checked_by_what_it_runs(
    rt: Any, bundle: Any, stranger: subprocess.Popen[bytes]
) -> None:
    """No start time recorded: conmon's binary with ``-c <id>`` is this container's
    conmon, the stranger is not, nor another container's conmon."""

    async def go() -> None:
        for cid in ("om1", "om2"):
            await rt.create(cid, bundle(cid, ["sleep", "1000"]))
            await rt.start(cid)
            _edit_meta(rt, cid, **OLD_META)
        own, other = rt.conmon_pid("om1"), rt.conmon_pid("om2")
        assert rt.live_conmon("om1") == own
        for wrong in (stranger.pid, other):
            rt.paths("om1").conmon_pidfile.write_text(str(wrong))
            assert not rt.conmon_alive("om1")
            assert not rt.signal_conmon("om1", signal.SIGKILL)
        assert _alive(stranger) and not _gone(other)
        rt.paths("om1").conmon_pidfile.write_text(str(own))
        assert rt.signal_conmon("om1", 0)  # the real one is signalled
        for cid in ("om1", "om2"):
            await rt.delete(cid, force=True)
        assert _gone(own) and _gone(other)

    asyncio.run(go())


def test_conmon_start_time_mismatch_is_refused(
    rt: Any, bundle: Any, stranger: subprocess.Popen[bytes]
) -> None:
    async def go() -> None:
        await rt.create("sm1", bundle("sm1", ["sleep", "1000"]))
        await rt.start("sm1")
        # the stranger's number recorded with conmon's start time: not the same process
        meta = json.loads((rt.paths("sm1").dir / "meta.json").read_text())
        _edit_meta(rt, "sm1", conmon_pid=stranger.pid)
        rt.paths("sm1").conmon_pidfile.write_text(str(stranger.pid))
        assert meta["conmon_start"] != proc_identity.start_time(stranger.pid)
        assert not rt.signal_conmon("sm1", signal.SIGKILL)
        rt.paths("sm1").conmon_pidfile.write_text(str(meta["conmon_pid"]))
        _edit_meta(rt, "sm1", conmon_pid=meta["conmon_pid"])
        await rt.delete("sm1", force=True)

    asyncio.run(go())
    assert _alive(stranger)


def test_init_of_an_older_podkitd_needs_its_conmon_as_parent(
    rt: Any, bundle: Any, stranger: subprocess.Popen[bytes]
) -> None:
    """An init pid without a start time is the container's only while the container's
    (checked) conmon is its parent; with no conmon to vouch, it is refused (it was
    trusted)."""

    async def go() -> None:
        pid = await rt.create("oi1", bundle("oi1", ["sleep", "1000"]))
        await rt.start("oi1")
        _edit_meta(rt, "oi1", **OLD_META)
        conmon = rt.live_conmon("oi1")
        assert conmon is not None
        fd = open_pidfd(ProcessRoot(pid, None, conmon))
        os.close(fd)
        os.close(open_process_root(ProcessRoot(pid, None, conmon)))
        for wrong in (ProcessRoot(stranger.pid, None, conmon), ProcessRoot(stranger.pid, None, None)):
            with pytest.raises(NotFound):
                open_pidfd(wrong)
            with pytest.raises(NotFound):
                open_process_root(wrong)
        with pytest.raises(NotFound, match="another process"):
            open_pidfd(ProcessRoot(stranger.pid, proc_identity.start_time(pid), None))
        await rt.delete("oi1", force=True)

    asyncio.run(go())
    assert _alive(stranger)


@pytest.mark.parametrize("terminal", [False, True])
def test_exec_is_signalled_through_its_pidfd(
    rt: Any, bundle: Any, stranger: subprocess.Popen[bytes], terminal: bool
) -> None:
    """``ExecProcess.kill`` signals the process it started, not its number: with the
    number pointing elsewhere (a reuse as kill() would see it) the exec still gets the
    signal and the stranger does not."""

    async def go() -> None:
        await rt.create("ex1", bundle("ex1", ["sleep", "1000"]))
        await rt.start("ex1")
        ep = await rt.exec("ex1", rt.process_from_spec("ex1", ["sleep", "100"], terminal=terminal))
        real = ep.pid
        assert real and int(_stat(real)[1]) == ep.monitor_pid
        ep.pid = stranger.pid
        ep.kill(signal.SIGTERM)
        assert await asyncio.wait_for(ep.wait(), 10) == 143
        assert _gone(real)
        ep.kill(signal.SIGKILL)  # after its end: nothing, nowhere
        await rt.delete("ex1", force=True)

    asyncio.run(go())
    assert _alive(stranger)


def test_open_checked_refuses_an_ended_process() -> None:
    proc = subprocess.Popen(["sleep", "300"])
    try:
        fd = proc_identity.open_checked(
            proc.pid, proc_identity.started_at(proc_identity.start_time(proc.pid)), "x"
        )
        os.close(fd)
        proc.kill()
        wait_for(lambda: _gone(proc.pid), what="sleep to end")
        # a zombie still holds its number and start time: ended all the same
        with pytest.raises(NotFound):
            proc_identity.open_checked(proc.pid, lambda pid: None, "x")
        assert not proc_identity.send(proc.pid, signal.SIGKILL, lambda pid: None, "x")
    finally:
        proc.kill()
        proc.wait()


def test_cgroup_leftovers_are_killed_only_while_in_the_cgroup(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A pid read from cgroup.procs that has left the cgroup (reaped, its number reused)
    is not killed."""
    from podkit.runtime import cgroups

    (tmp_path / "cgroup.procs").write_text(f"{stranger.pid}\n")
    cgroups._kill_procs(str(tmp_path), "/podkit-test/no-such-cgroup")
    assert _alive(stranger)
    own = Path(f"/proc/{stranger.pid}/cgroup").read_text().splitlines()[0].split(":", 2)[2]
    cgroups._kill_procs(str(tmp_path), own)
    assert stranger.wait(10) == -signal.SIGKILL


def test_restart_never_signals_a_reused_conmon_pid(
    daemon: Daemon, busybox_image: str, stranger: subprocess.Popen[bytes]
) -> None:
    """podkitd restarts, the container's conmon died while it was down and its pid file
    names another process: the restarted daemon does not take that process for the
    conmon (it watched it, then SIGKILLed it at the container's removal)."""
    c = daemon.client()
    ctr = c.containers.run("busybox", ["sleep", "300"])
    files = daemon.state / "runtime" / "containers" / ctr.id
    conmon = int((files / "conmon.pid").read_text())
    daemon.kill()
    try:
        os.kill(conmon, signal.SIGKILL)
        wait_for(lambda: _gone(conmon), what="conmon to go")
        (files / "conmon.pid").write_text(str(stranger.pid))
        meta = json.loads((files / "meta.json").read_text())
        (files / "meta.json").write_text(json.dumps({**meta, "conmon_pid": stranger.pid}))
    finally:
        daemon.start()
    daemon.cli("rm", "-f", ctr.id, check=True)
    assert _alive(stranger)
    assert not os.path.exists(f"/proc/{ctr.raw['pid']}") or _gone(ctr.raw["pid"])
    assert "now belongs to another process" in daemon.logs()


def test_restart_with_containers_of_an_older_podkitd(daemon: Daemon, busybox_image: str) -> None:
    """Containers whose meta.json has no start times (an older podkitd's) are still
    stopped, killed and removed by the restarted daemon: their conmon by its command
    line, their init as its child."""
    c = daemon.client()
    # pid 1 of a pid namespace gets no SIGTERM it has no handler for: sh traps it
    a = c.containers.run("busybox", ["sh", "-c", "trap 'exit 43' TERM; sleep 300 & wait"])
    b = c.containers.run("busybox", ["sleep", "300"])
    daemon.kill()
    try:
        for ctr in (a, b):
            path = daemon.state / "runtime" / "containers" / ctr.id / "meta.json"
            meta = json.loads(path.read_text())
            for k in OLD_META:
                meta.pop(k, None)
            path.write_text(json.dumps(meta))
    finally:
        daemon.start()
    assert c.containers.get(a.id).raw["state"] == "running"
    daemon.cli("stop", "-t", "5", a.id, check=True)
    assert c.containers.get(a.id).raw["exit_code"] == 43  # SIGTERM reached the init
    daemon.cli("kill", b.id, check=True)
    wait_for(lambda: c.containers.get(b.id).raw["state"] == "exited", what="b to exit")
    daemon.cli("rm", a.id, b.id, check=True)


def test_a_wrapper_script_is_identified_by_the_command_line(tmp_path: Path) -> None:
    """A conmon configured as a wrapper script execs the real binary: its exe is not
    the configured path, so only the command line can name the process."""
    import sys as _sys

    wrapper = tmp_path / "conmon-wrapper"
    wrapper.write_text('#!/bin/sh\nexec /usr/bin/conmon "$@"\n')
    wrapper.chmod(0o755)
    p = subprocess.Popen([_sys.executable, "-c", "import time; time.sleep(60)", "-c", "abc"])
    try:
        # until the exec: a child just forked still shows its parent's command line
        wait_for(lambda: b"abc" in Path(f"/proc/{p.pid}/cmdline").read_bytes(), 10, what="the exec")
        assert proc_identity.runs(str(wrapper), "-c", "abc")(p.pid) is None
        assert "not the one for -c other" in (proc_identity.runs(str(wrapper), "-c", "other")(p.pid) or "")
        # a binary is still compared by exe
        assert "runs" in (proc_identity.runs("/usr/bin/conmon", "-c", "abc")(p.pid) or "")
    finally:
        p.kill()
        p.wait()
