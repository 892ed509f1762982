"""`run --rm` cut short by a daemon crash (issue 10, item 3): recovery removes the
container, as docker removes AutoRemove containers that are not running at restore;
and an exit is never recorded before its start.

The kill points are reached deterministically: a real SIGKILL of podkitd after
create (before start), and while the container runs (it then ends while the daemon
is down). The third, between the exit's record and the removal (a few statements
apart), is the record as such a kill leaves it, written into metadata.db while the
daemon is down.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from tests.helpers import Daemon, wait_for


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _conmon_pid(d: Daemon, cid: str) -> int:
    return int((d.state / "runtime" / "containers" / cid / "conmon.pid").read_text())


def test_run_rm_interrupted_by_a_crash_leaves_no_container(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    created = c.containers.create("busybox", ["true"], auto_remove=True)
    running = c.containers.run("busybox", ["sleep", "300"], auto_remove=True)
    ended = c.containers.run("busybox", ["sleep", "300"], auto_remove=True)
    pid, conmon = running.raw["pid"], _conmon_pid(daemon, running.id)
    ended_conmon = _conmon_pid(daemon, ended.id)
    daemon.kill()
    try:
        # `running` ends while the daemon is down: conmon records the exit and leaves.
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: _gone(conmon), what="conmon of the killed container to exit")
        # `ended`: exited and on record, its removal not begun.
        os.kill(ended.raw["pid"], signal.SIGKILL)
        wait_for(lambda: _gone(ended_conmon), what="conmon of the ended container to exit")
        db = sqlite3.connect(daemon.root / "metadata.db")
        with db:
            db.execute(
                "UPDATE containers SET state='exited', exit_code=137, pid=0, finished_at=? WHERE id=?",
                (time.time(), ended.id),
            )
        db.close()
    finally:
        daemon.start()
    left = {x.id for x in c.containers.list(all=True)}
    assert not left & {created.id, running.id, ended.id}, [x.raw for x in c.containers.list(all=True)]


def test_an_exit_is_never_before_its_start(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    ids = [c.containers.run("busybox", ["true"]).id for _ in range(3)]
    try:
        for cid in ids:
            wait_for(lambda cid=cid: c.containers.get(cid).raw["state"] == "exited", what=f"{cid} to exit")
            r = c.containers.get(cid).raw
            assert r["finished_at"] >= r["started_at"] > 0, r
    finally:
        for cid in ids:
            c.containers.remove(cid, force=True)
