"""SIGKILL of podkitd at arbitrary points of a busy workload, then a restart.

A worker imports images, creates, starts, stops and removes containers in a loop
while the daemon is killed after a (seeded) random delay. After each restart the
store must be whole and true: SQLite passes ``integrity_check``, every blob hashes to
its name, snapshot rows and trees match one to one, no half-applied layer is
visible, every container the daemon reports running really runs (and no runc
container runs that the daemon does not know), and the workload can go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import threading
from pathlib import Path

from podkit import errors
from tests.fixtures.images import BUSYBOX_CHANGES
from tests.helpers import Daemon

ROUNDS = int(os.environ.get("PODKIT_CRASH_ROUNDS", "6"))  # more for a deeper local run


def _worker(daemon: Daemon, tarball: Path, stop: threading.Event, rnd: int) -> None:
    """Busy work until the daemon dies under it (every error after that is expected)."""
    try:
        c = daemon.client()
        i = 0
        while not stop.is_set():
            i += 1
            ref = f"crash/r{rnd}:{i}"
            c.images.import_(tarball, name=ref, changes=BUSYBOX_CHANGES)
            ctr = c.containers.create(ref, ["sleep", "300"], name=f"c{rnd}-{i}")
            c.containers.start(ctr.id)
            if i % 2:
                c.containers.stop(ctr.id, timeout=0)
            if i % 3 == 0:
                c.containers.remove(ctr.id, force=True)
                c.images.remove(ref)
    except (errors.PodkitError, OSError, ValueError):
        return


def _blobs_match_their_names(root: Path) -> list[str]:
    bad = []
    for p in (root / "content" / "blobs" / "sha256").iterdir():
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):  # noqa: B023
                h.update(chunk)
        if h.hexdigest() != p.name:
            bad.append(p.name)
    return bad


def _check_consistent(daemon: Daemon) -> None:
    db = sqlite3.connect(f"file:{daemon.root / 'metadata.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        snaps = db.execute("SELECT key, id, kind FROM snapshots").fetchall()
    finally:
        db.close()
    assert _blobs_match_their_names(daemon.root) == []
    assert list((daemon.root / "content" / "ingest").iterdir()) == []

    # snapshot rows and trees one to one; nothing half-applied
    trees = {int(p.name) for p in (daemon.root / "snapshots" / "overlay").iterdir() if p.name.isdigit()}
    assert {i for _, i, _ in snaps} == trees, (snaps, trees)
    assert not [k for k, _, _ in snaps if k.startswith("extract-")]

    c = daemon.client()
    ctrs = c.containers.list(all=True)
    ids = {x.id for x in ctrs}
    # every container snapshot belongs to a container
    orphans = [k for k, _, kind in snaps if k.startswith("ctr-") and k[4:] not in ids]
    assert not orphans, orphans
    # the daemon's view of what runs is the truth
    for x in ctrs:
        if x.state == "running":
            assert x.pid and Path(f"/proc/{x.pid}").exists(), (x.id, x.pid)
    runc = subprocess.run(
        ["runc", "--root", str(daemon.state / "runtime" / "runc"), "list", "-f", "json"],
        capture_output=True,
        text=True,
    )
    for r in json.loads(runc.stdout or "null") or []:
        if r["status"] in ("running", "paused"):
            assert r["id"] in ids, f"runc runs {r['id']}, the daemon does not know it"
            assert c.containers.get(r["id"]).state in ("running", "paused")


def test_sigkill_at_random_points_keeps_the_store_consistent(daemon: Daemon, busybox_tarball: Path) -> None:
    rng = random.Random(20261127)
    try:
        for rnd in range(ROUNDS):
            stop = threading.Event()
            t = threading.Thread(target=_worker, args=(daemon, busybox_tarball, stop, rnd), daemon=True)
            t.start()
            # A wait on the clock is the point here: the kill lands wherever the work is.
            stop.wait(rng.uniform(0.3, 2.5))
            daemon.kill()
            stop.set()
            t.join(60)
            assert not t.is_alive()
            daemon.start()
            _check_consistent(daemon)
        # after all of that, the engine still works end to end
        c = daemon.client()
        c.images.import_(busybox_tarball, name="crash/final:1", changes=BUSYBOX_CHANGES)
        r = c.containers.run("crash/final:1", ["echo", "alive"], detach=False)
        assert r.output == b"alive\n"
    finally:
        if daemon.proc is None:
            daemon.start()
        c = daemon.client()
        for x in c.containers.list(all=True):
            with contextlib.suppress(errors.NotFound):
                c.containers.remove(x.id, force=True)
    # with every container gone, no container snapshot is left
    _check_consistent(daemon)
    db = sqlite3.connect(f"file:{daemon.root / 'metadata.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM snapshots WHERE key LIKE 'ctr-%'").fetchone()[0] == 0
    finally:
        db.close()
    assert os.listdir(daemon.state / "runtime" / "runc") == [] or not any(
        (daemon.state / "runtime" / "runc" / x / "state.json").exists()
        for x in os.listdir(daemon.state / "runtime" / "runc")
    )
