"""The layer diff (podkit.snapshots.diff) on real trees: an overlay upper dir over a real
overlay mount, and the comparison walk of the copying snapshotter over two ``cp -a``
trees. What each reports (A/C/D), what the tar holds (whiteouts, opaque markers, owners,
modes, mtimes, xattrs, hard links), and that the tar is the same bytes twice."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from podkit.snapshots.diff import overlay_changes, tree_changes, write_layer
from podkit.snapshots.mount import sys_mount, sys_umount


def _base(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "keep").write_text("same")
    (root / "etc" / "gone").write_text("bye")
    (root / "etc" / "edit").write_text("old")
    (root / "opq").mkdir()
    (root / "opq" / "hidden").write_text("x")
    (root / "tmp").mkdir()
    os.utime(root / "etc" / "edit", (1_000_000, 1_000_000))


def _change(root: Path) -> None:
    (root / "etc" / "gone").unlink()
    (root / "etc" / "edit").write_text("new content")
    os.utime(root / "etc" / "edit", (2_000_000, 2_000_000))
    (root / "new").mkdir()
    (root / "new" / "a").write_text("a")
    os.chown(root / "new" / "a", 1234, 5678)
    os.chmod(root / "new" / "a", 0o640)
    os.link(root / "new" / "a", root / "new" / "b")
    os.symlink("a", root / "new" / "s")
    os.setxattr(root / "new" / "a", "user.note", b"hello")
    subprocess.run(["rm", "-rf", str(root / "opq")], check=True)
    (root / "opq").mkdir()
    (root / "opq" / "fresh").write_text("y")


def _members(changes: list) -> tuple[bytes, dict[str, tarfile.TarInfo]]:  # type: ignore[type-arg]
    buf = io.BytesIO()
    write_layer(changes, buf)
    data = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return data, {m.name: m for m in tf.getmembers()}


def _check_layer(members: dict[str, tarfile.TarInfo]) -> None:
    assert "etc/.wh.gone" in members
    assert "etc/keep" not in members
    assert members["etc/edit"].mtime == 2_000_000
    a = members["new/a"]
    assert (a.uid, a.gid, a.mode) == (1234, 5678, 0o640)
    assert a.pax_headers.get("SCHILY.xattr.user.note") == "hello"
    assert members["new/b"].islnk() and members["new/b"].linkname == "new/a"
    assert members["new/s"].issym() and members["new/s"].linkname == "a"
    assert "opq/fresh" in members
    assert "opq/hidden" not in members
    assert not any(m.startswith("tmp") for m in members)
    names = list(members)
    assert names == sorted(names)


def test_overlay_upper_dir_as_a_layer(tmp_path: Path) -> None:
    low, up, work, mnt = (tmp_path / n for n in ("low", "up", "work", "mnt"))
    for d in (up, work, mnt):
        d.mkdir()
    _base(low)
    sys_mount("overlay", str(mnt), "overlay", 0, f"index=off,lowerdir={low},upperdir={up},workdir={work}")
    try:
        _change(mnt)
    finally:
        sys_umount(str(mnt))
    found = overlay_changes(up, [low])
    kinds = {c.path: c.kind for c in found}
    assert kinds["/etc/gone"] == "D"
    assert kinds["/etc/edit"] == "C"
    assert kinds["/etc"] == "C"
    assert kinds["/new"] == "A" and kinds["/new/a"] == "A"
    assert "/etc/keep" not in kinds and "/tmp" not in kinds
    data, members = _members(found)
    _check_layer(members)
    # The recreated directory hides its lower content: an opaque marker, or (on kernels
    # that record it as a deletion then a new dir) a whiteout of the old entries.
    assert "opq/.wh..wh..opq" in members or "opq/.wh.hidden" in members
    assert _members(overlay_changes(up, [low]))[0] == data  # reproducible


def test_copying_snapshotter_comparison_walk(tmp_path: Path) -> None:
    parent, tree = tmp_path / "parent", tmp_path / "tree"
    _base(parent)
    subprocess.run(["cp", "-a", str(parent), str(tree)], check=True)
    assert tree_changes(tree, parent) == []
    _change(tree)
    found = tree_changes(tree, parent)
    kinds = {c.path: c.kind for c in found}
    assert kinds["/etc/gone"] == "D" and kinds["/etc/edit"] == "C"
    assert kinds["/opq/hidden"] == "D" and kinds["/opq/fresh"] == "A"
    assert "/etc/keep" not in kinds
    data, members = _members(found)
    _check_layer(members)
    assert "opq/.wh.hidden" in members
    assert _members(tree_changes(tree, parent))[0] == data


def test_mount_targets_left_out_while_empty(tmp_path: Path) -> None:
    parent, tree = tmp_path / "parent", tmp_path / "tree"
    _base(parent)
    subprocess.run(["cp", "-a", str(parent), str(tree)], check=True)
    (tree / "etc" / "hosts").write_text("")
    (tree / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    found = tree_changes(tree, parent, frozenset({"/etc/hosts", "/etc/resolv.conf"}))
    assert [c.path for c in found] == ["/etc", "/etc/resolv.conf"]  # written to: kept


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (overlay mounts, chown)")


def test_overlay_prune_leaves_the_upper_dir_as_its_layer(tmp_path: Path) -> None:
    """What the diff leaves out (empty mount targets, a directory copied up only for one,
    a whiteout of nothing) is listed in ``dropped``; prune deletes just that, and the
    upper dir then holds what the layer holds."""
    from podkit.snapshots.diff import prune

    low, up, work, mnt = (tmp_path / n for n in ("low", "up", "work", "mnt"))
    for d in (up, work, mnt):
        d.mkdir()
    _base(low)
    sys_mount("overlay", str(mnt), "overlay", 0, f"index=off,lowerdir={low},upperdir={up},workdir={work}")
    try:
        (mnt / "etc" / "hosts").touch()  # a mount target the runtime made: /etc copied up for it
        (mnt / "proc").mkdir()
        (mnt / "made").write_text("kept")
        (mnt / "made").unlink()  # only in the upper: no whiteout needed...
        (mnt / "new").mkdir()
        (mnt / "new" / "f").write_text("f")
    finally:
        sys_umount(str(mnt))
    os.mknod(up / "ghost", 0o600 | 0o020000, 0)  # ...but a whiteout of nothing may still be there
    dropped: list[str] = []
    found = overlay_changes(up, [low], frozenset({"/etc/hosts", "/proc"}), dropped)
    assert {c.path for c in found} == {"/new", "/new/f"}
    assert set(dropped) == {"etc/hosts", "etc", "proc", "ghost"}
    assert dropped.index("etc/hosts") < dropped.index("etc")  # children first
    prune(up, dropped)
    left = sorted(str(p.relative_to(up)) for p in up.rglob("*"))
    assert left == ["new", "new/f"]
