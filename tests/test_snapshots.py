"""Snapshotters against the real kernel: overlayfs (and the copying fallback), mounts, metadata."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit import errors
from podkit.snapshots import (
    ACTIVE,
    COMMITTED,
    NativeSnapshotter,
    OverlaySnapshotter,
    Snapshotter,
    is_mountpoint,
    mount_all,
    unmount,
)
from podkit.snapshots.mount import Mount
from podkit.store import Database

# Snapshots are overlay mounts: root.
pytestmark = pytest.mark.root


@pytest.fixture(params=["overlay", "native"])
def sn(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Snapshotter]:
    db = Database(workdir / "meta.db")
    cls = OverlaySnapshotter if request.param == "overlay" else NativeSnapshotter
    s = cls(db, workdir / "root")
    yield s
    db.close()


@pytest.fixture
def mnt(workdir: Path) -> Iterator[Path]:
    m = workdir / "mnt"
    m.mkdir()
    yield m
    unmount(m)


def _layer(sn: Snapshotter, name: str, parent: str | None, files: dict[str, str]) -> None:
    key = f"extract-{name}"
    sn.prepare(key, parent)
    d = sn.apply_dir(key)
    for rel, text in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    sn.commit(name, key)


def test_prepare_commit_and_mount_layers(sn: Snapshotter, mnt: Path) -> None:
    _layer(sn, "l1", None, {"a": "1", "etc/x": "base"})
    _layer(sn, "l2", "l1", {"b": "2", "etc/x": "over"})
    assert sn.stat("l2").kind == COMMITTED and sn.stat("l2").parent == "l1"
    mounts = sn.prepare("ctr", "l2")
    assert sn.stat("ctr").kind == ACTIVE
    mount_all(mounts, mnt)
    try:
        assert (mnt / "a").read_text() == "1"
        assert (mnt / "etc/x").read_text() == "over"
        (mnt / "new").write_text("rw")
        (mnt / "a").unlink()
    finally:
        unmount(mnt)
    assert not is_mountpoint(mnt)
    # The container's writes stayed in its own snapshot: the layers are untouched.
    v = sn.view("v", "l2")
    mount_all(v, mnt)
    try:
        assert (mnt / "a").read_text() == "1"
        assert not (mnt / "new").exists()
        with pytest.raises(OSError):
            (mnt / "c").write_text("ro")
    finally:
        unmount(mnt)
    # Parents cannot go while children exist; children first.
    with pytest.raises(errors.Conflict):
        sn.remove("l2")
    sn.remove("ctr")
    sn.remove("v")
    sn.remove("l2")
    sn.remove("l1")
    assert sn.list() == []
    assert [p for p in sn.root.iterdir()] == []


def test_errors_name_the_problem(sn: Snapshotter) -> None:
    with pytest.raises(errors.NotFound, match="parent snapshot nope"):
        sn.prepare("k", "nope")
    sn.prepare("k")
    with pytest.raises(errors.AlreadyExists):
        sn.prepare("k")
    with pytest.raises(errors.InvalidArgument, match="not committed"):
        sn.prepare("k2", "k")
    with pytest.raises(errors.InvalidArgument):
        sn.prepare("a/b")
    sn.commit("c", "k")
    with pytest.raises(errors.InvalidArgument, match="committed"):
        sn.mounts("c")
    with pytest.raises(errors.NotFound):
        sn.stat("k")
    with pytest.raises(errors.NotFound):
        sn.remove("zzz")


def test_usage_counts_own_tree(sn: Snapshotter) -> None:
    _layer(sn, "l1", None, {"big": "x" * 100_000})
    u = sn.usage("l1")
    assert u.size >= 100_000 and u.inodes >= 1


def test_cleanup_after_crash(sn: Snapshotter) -> None:
    sn.prepare("extract-half")  # a layer apply that never finished
    sn.prepare("container")
    (sn.root / "999").mkdir()  # a tree without a row
    assert sn.cleanup() == 2
    assert [i.key for i in sn.list()] == ["container"]
    assert not (sn.root / "999").exists()


def test_many_layers_need_short_overlay_options(workdir: Path, mnt: Path) -> None:
    """Past one page of mount options, lower dirs are passed relative to the snapshot root."""
    db = Database(workdir / "meta.db")
    # A deep root makes every lower dir path long.
    root = workdir / ("r" * 100) / ("s" * 100)
    sn = OverlaySnapshotter(db, root)
    parent = None
    for i in range(40):
        _layer(sn, f"l{i}", parent, {f"f{i}": str(i)})
        parent = f"l{i}"
    mounts = sn.prepare("ctr", parent)
    assert len(",".join(mounts[0].options)) > os.sysconf("SC_PAGESIZE")
    mount_all(mounts, mnt)
    try:
        assert (mnt / "f0").read_text() == "0" and (mnt / "f39").read_text() == "39"
    finally:
        unmount(mnt)
    db.close()


def test_mount_to_oci() -> None:
    m = Mount("overlay", "overlay", ["lowerdir=/a"])
    assert m.to_oci("/") == {
        "destination": "/",
        "type": "overlay",
        "source": "overlay",
        "options": ["lowerdir=/a"],
    }
    assert "destination" not in m.to_oci()


def test_mount_flags(workdir: Path, mnt: Path) -> None:
    src = workdir / "src"
    src.mkdir()
    (src / "f").write_text("x")
    mount_all([Mount("bind", str(src), ["rbind", "ro", "nosuid", "nodev"])], mnt)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        opts = next(line.split()[5] for line in lines if line.split()[4] == str(mnt))
        assert {"ro", "nosuid", "nodev"} <= set(opts.split(","))
        assert (mnt / "f").read_text() == "x"
    finally:
        unmount(mnt)
    assert not is_mountpoint(mnt)
    with pytest.raises(errors.Internal, match="mount"):
        mount_all([Mount("overlay", "overlay", [f"lowerdir={workdir / 'missing'}"])], mnt)
    assert not is_mountpoint(mnt)


def test_lost_layer_trees_are_forgotten(sn: Snapshotter) -> None:
    _layer(sn, "l1", None, {"a": "1"})
    _layer(sn, "l2", "l1", {"b": "2"})
    _layer(sn, "other", None, {"c": "3"})
    sn.prepare("ctr", "other")
    import shutil

    shutil.rmtree(sn.dir(sn.stat("l1").id))  # the lower layer's tree vanished
    shutil.rmtree(sn.dir(sn.stat("other").id))  # ... and one a container stands on
    sn.cleanup()
    assert sorted(i.key for i in sn.list()) == ["ctr", "other"]  # l2 built on l1 went too
