"""podkitd SIGKILLed in the middle of a pull: the store stays consistent and the
next pull succeeds."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.registry import RegistryServer, build_layout, find_in_snapshots, skopeo_push
from tests.helpers import Daemon, wait_for

# Whoever runs the tests: their docker logins stay out of it.
pytestmark = pytest.mark.usefixtures("no_docker_config")


def _verify_blobs(root: Path) -> int:
    """Every committed blob's content matches its name; returns how many there are."""
    n = 0
    for p in (root / "content" / "blobs" / "sha256").iterdir():
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert h.hexdigest() == p.name, f"blob {p.name} holds other content"
        n += 1
    return n


@pytest.mark.parametrize("kill_at", ["Downloading", "Pull complete"])
def test_sigkill_mid_pull_then_pull_again(
    daemon: Daemon, registry: RegistryServer, workdir: Path, kill_at: str
) -> None:
    """Killed while the first layer downloads, or once the first layer is applied and
    the others are on their way."""
    # Four layers of incompressible data (~48 MB), so the pull takes a moment.
    layers = [{f"layer{i}.bin": os.urandom(12 << 20), f"small{i}.txt": b"%d\n" % i} for i in range(4)]
    skopeo_push(build_layout(workdir / "oci", layers), registry, "big:1")
    ref = f"{registry.host}/big:1"

    started = threading.Event()
    failure: list[BaseException] = []

    def progress(m: dict[str, Any]) -> None:
        if m.get("status") == kill_at and (kill_at != "Downloading" or m.get("current", 0) > 0):
            started.set()

    def run() -> None:
        try:
            daemon.client().images.pull(ref, progress=progress)
        except BaseException as e:  # the daemon dies under it: expected
            failure.append(e)

    t = threading.Thread(target=run)
    t.start()
    wait_for(started.is_set, 30, what="the pull to start downloading")
    daemon.kill()
    t.join(30)
    assert not t.is_alive()
    assert failure, "the pull finished before the daemon was killed"

    # Half-written blobs are only ever in ingest/, never under blobs/.
    _verify_blobs(daemon.root)
    daemon.start()
    assert not list((daemon.root / "content" / "ingest").iterdir())
    db = sqlite3.connect(daemon.root / "metadata.db")
    try:  # the dead pull's lease went with it
        assert db.execute("SELECT COUNT(*) FROM leases WHERE id LIKE 'pull-%'").fetchone()[0] == 0
    finally:
        db.close()
    seen: list[dict[str, Any]] = []
    img = daemon.client().images.pull(ref, progress=seen.append)
    assert img.name == ref
    assert _verify_blobs(daemon.root) >= 6  # manifest, config, 4 layers
    for i in range(4):
        assert find_in_snapshots(daemon.root, f"small{i}.txt"), f"layer {i} not applied"
    assert any(m["status"] == "Pull complete" for m in seen)


def test_client_gone_cancels_the_pull(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """Like docker: when the client goes away mid-pull, the daemon stops pulling and
    cleans up (no ingest files, no lease, no image)."""
    import sqlite3
    import subprocess

    from tests.helpers import BIN

    layers = [{f"l{i}.bin": os.urandom(12 << 20)} for i in range(4)]
    skopeo_push(build_layout(workdir / "oci", layers), registry, "gone:1")
    env = dict(os.environ, PODKIT_HOST=daemon.host)
    p = subprocess.Popen(
        [str(BIN / "podkit"), "pull", f"{registry.host}/gone:1"], stdout=subprocess.PIPE, env=env
    )
    assert p.stdout is not None
    for line in p.stdout:
        if b"Downloading" in line:
            break
    p.kill()
    p.wait()
    p.stdout.close()

    def settled() -> bool:
        db = sqlite3.connect(daemon.root / "metadata.db")
        try:
            leases = db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
        finally:
            db.close()
        return leases == 0 and not list((daemon.root / "content" / "ingest").iterdir())

    wait_for(settled, 20, what="the daemon to drop the abandoned pull")
    names = [i.name for i in daemon.client().images.list()]
    assert f"{registry.host}/gone:1" not in names
    _verify_blobs(daemon.root)


def test_gc_during_pull_keeps_its_content(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """Garbage collection running over and over while a pull is in flight must not take
    the pull's blobs or snapshots (its lease protects them)."""
    layers = [{f"g{i}.bin": os.urandom(6 << 20), f"g{i}.txt": b"%d\n" % i} for i in range(4)]
    skopeo_push(build_layout(workdir / "oci", layers), registry, "gc:1")
    ref = f"{registry.host}/gc:1"
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(daemon.client().images.pull(ref))
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=run)
    t.start()
    images = daemon.client().images
    rounds = 0
    while t.is_alive():
        images.prune()  # dangling only, then a full GC
        rounds += 1
    t.join()
    assert rounds > 0
    assert not isinstance(result[0], BaseException), result[0]
    images.prune()
    _verify_blobs(daemon.root)
    for i in range(4):
        assert find_in_snapshots(daemon.root, f"g{i}.txt")
    assert images.get(ref).name == ref
