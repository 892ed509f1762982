"""`run --rm` returns with the exit code while the removal finishes in the background
(issue 8 item 2): the exit and the removal's start are one record write, the name is
free at once, the teardown leaves nothing behind, and a crash mid-teardown is resumed
by the next start (its anonymous volumes included).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from tests.helpers import Daemon, wait_for
from tests.leaks import mounts_under


def _records(d: Daemon) -> list[dict[str, object]]:
    return [c.raw for c in d.client().containers.list(all=True)]


def _netns_pins(d: Daemon) -> list[str]:
    p = d.state / "netns"
    return sorted(x.name for x in p.iterdir()) if p.is_dir() else []


def _leases(d: Daemon) -> list[str]:
    """host-local's lease files (one per address handed out) of every network."""
    ipam = d.root / "networks" / "ipam"
    return [
        str(f)
        for f in (ipam.rglob("*") if ipam.is_dir() else [])
        if f.is_file() and f.name != "lock" and not f.name.startswith("last_reserved_ip")
    ]


def _rootfs_mounts(d: Daemon) -> list[str]:
    return [m for m in mounts_under(d.base) if m.endswith("/rootfs")]


def test_run_rm_returns_the_exit_code_and_frees_the_name_at_once(daemon: Daemon, busybox_image: str) -> None:
    for code in (3, 4):  # the same name twice in a row: the first's removal may still run
        r = daemon.cli(
            "run", "--rm", "--name", "again", "-v", "/scratch", "busybox", "sh", "-c", f"exit {code}"
        )
        assert r.returncode == code, r.stderr
    wait_for(lambda: not _records(daemon), what="the background removals to finish")
    assert _rootfs_mounts(daemon) == [] and _netns_pins(daemon) == []
    assert _leases(daemon) == []
    vols = daemon.cli("volume", "ls", "--format", "json", check=True).stdout
    assert vols == "", vols  # the anonymous volumes went with their containers
    # a destroy event names the container by the name it was given, not its removal name
    events = daemon.client().events(since=0, until=time.time(), type="container")
    names = {(e.get("attributes") or e).get("name") for e in events if e.get("action") == "destroy"}
    assert names == {"again"}, names


def test_a_crash_during_the_background_removal_is_resumed(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    ran = c.containers.run("busybox", ["sleep", "300"], name="cut", auto_remove=True, volumes=["/scratch"])
    pid = ran.raw["pid"]
    conmon = int((daemon.state / "runtime" / "containers" / ran.id / "conmon.pid").read_text())
    assert _rootfs_mounts(daemon) and _netns_pins(daemon)
    daemon.kill()
    try:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{conmon}"), what="conmon to exit")
        # The record as a SIGKILL right after the exit's write leaves it: removal begun
        # (its name given up), nothing released yet - rootfs mounted, netns attached.
        db = sqlite3.connect(daemon.root / "metadata.db")
        with db:
            db.execute(
                "UPDATE containers SET state='removing', name=?, exit_code=137, pid=0 WHERE id=?",
                (f"cut~removing-{ran.id[:12]}", ran.id),
            )
        db.close()
    finally:
        daemon.start()
    assert _records(daemon) == []
    assert _rootfs_mounts(daemon) == [] and _netns_pins(daemon) == [] and _leases(daemon) == []
    vols = daemon.cli("volume", "ls", "--format", "json", check=True).stdout
    assert vols == "", vols
    # the name is free again
    r = daemon.cli("run", "--rm", "--name", "cut", "busybox", "true")
    assert r.returncode == 0, r.stderr
