"""A full disk under the daemon's root (issue 10, item 4).

The root is a small loop-mounted ext4 filesystem, so filling it is quick and touches
nothing else: a container that fills it with its own writes ends, and its exit is on
record (no container "Up" with its process gone, `run --rm` returns); requests that
need space answer 507 naming the root; reads and removals (which free space) go on;
and a restart into the full disk recovers.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.images import import_busybox
from tests.helpers import Daemon, wait_for

# a loop mount and a real podkitd
pytestmark = pytest.mark.root


@contextlib.contextmanager
def small_root(base: Path, mib: int = 48) -> Iterator[Path]:
    img = base / "root.img"
    subprocess.run(["truncate", "-s", f"{mib}M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(img)], check=True, capture_output=True)
    mnt = base / "d" / "root"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Fill the filesystem of ``path`` from the host (a file, written until ENOSPC)."""
    with contextlib.suppress(OSError), open(path, "wb") as f:
        chunk = b"\0" * (1 << 20)
        while True:
            f.write(chunk)
            f.flush()


def random_tarball(base: Path) -> Path:
    """A tarball of 4 MiB of random bytes, on the test's own disk: no blob to share."""
    import io
    import os
    import tarfile

    out = base / "random.tar"
    with tarfile.open(out, "w") as tf:
        data = os.urandom(4 << 20)
        ti = tarfile.TarInfo("noise")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return out


@pytest.fixture
def full_daemon(workdir: Path, busybox_tarball: Path) -> Iterator[Daemon]:
    """A podkitd whose root is a 48 MiB ext4 of its own, busybox imported."""
    with small_root(workdir) as _root:
        d = Daemon(workdir / "d").start()
        try:
            import_busybox(d, busybox_tarball)
            yield d
        finally:
            with contextlib.suppress(Exception):
                for c in d.client().containers.list(all=True):
                    d.client().containers.remove(c.id, force=True)
            d.stop()
            subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
            from tests.fixtures.network import scrub_subnet

            scrub_subnet(d.subnet)


def test_a_full_disk_is_a_clear_error_and_the_daemon_goes_on(full_daemon: Daemon) -> None:
    d = full_daemon
    keep = d.client().containers.run("busybox", ["sleep", "300"])
    victim = d.client().containers.run("busybox", ["sleep", "300"])
    # dd ends with ENOSPC once the root's filesystem is full; its exit must be recorded
    r = d.cli(
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/fill bs=1M; exit 3",
        timeout=90,
    )
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr, d.logs()[-3000:])
    # (its removal, which frees what dd wrote, finishes in the background)
    wait_for(lambda: len(d.client().containers.list(all=True)) == 2, 30, what="the --rm container gone")
    # fill it from the host too: it stays full for what follows
    fill(d.root / "ballast")
    # reads go on
    assert {c.id for c in d.client().containers.list()} == {keep.id, victim.id}
    assert d.client().images.list()
    # a write answers a clear error, not a 500
    r = d.cli("import", str(random_tarball(d.base)), "other:1")
    assert r.returncode == 1 and "no space left on device under" in r.stderr and str(d.root) in r.stderr, (
        r.returncode,
        r.stderr,
    )
    # a removal works while full (the database's reserve takes its record)
    d.client().containers.remove(victim.id, force=True)
    assert [c.id for c in d.client().containers.list(all=True)] == [keep.id]
    # a restart into the full disk recovers: the running container is still there
    d.restart()
    assert [x.id for x in d.client().containers.list()] == [keep.id]
    (d.root / "ballast").unlink()
    d.client().containers.remove(keep.id, force=True)
    assert not d.client().containers.list(all=True)
