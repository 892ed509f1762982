"""Layer tricks beyond tests/test_unpack.py's: malformed whiteout names, names the file
system cannot hold, links that lead out across layers; and the same through the API."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from podkit import errors
from podkit.images.unpack import apply_layer
from tests.fixtures.images import tar_bytes
from tests.helpers import Daemon

# Layers carry root-owned files and whiteouts (chown, mknod), and a daemon runs: root.
pytestmark = pytest.mark.root


def _apply(entries: list[tuple], target: Path, **kw: object) -> str:
    target.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(tar_bytes(entries)), "", target, **kw)  # type: ignore[arg-type]


@pytest.fixture
def tree(workdir: Path) -> tuple[Path, Path]:
    """(root, outside): a root with content a whiteout could delete, and a host dir beside it."""
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    root = workdir / "layers" / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("f")
    (root / "top").write_text("t")
    return root, outside


def _untouched(root: Path, outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["keep"] and (outside / "keep").read_text() == "k"
    assert sorted(os.listdir(root.parent)) == ["tree"]
    assert (root / "a" / "f").read_text() == "f" and (root / "top").read_text() == "t"


# ``.wh...`` would whiteout ``..`` (in remove mode: delete the parent), ``.wh..`` the
# directory itself, ``.wh.`` nothing at all.
@pytest.mark.parametrize("mode", ["overlay", "remove"])
@pytest.mark.parametrize("name", ["a/.wh...", "a/.wh..", "a/.wh.", ".wh...", "a/.wh./"])
def test_malformed_whiteouts_are_refused(tree: tuple[Path, Path], mode: str, name: str) -> None:
    root, outside = tree
    with pytest.raises(errors.UnsafeContent, match="malformed whiteout"):
        _apply([(name, "dir" if name.endswith("/") else "file", "")], root, whiteouts=mode)
    _untouched(root, outside)


@pytest.mark.parametrize("name", ["x" * 300, "/".join(["d" * 200] * 30) + "/f"])
def test_names_the_file_system_cannot_hold_are_invalid(tree: tuple[Path, Path], name: str) -> None:
    root, outside = tree
    with pytest.raises(errors.InvalidArgument, match="cannot be created"):
        _apply([(name, "file", "x")], root)
    _untouched(root, outside)


def test_a_hard_link_to_a_symlink_that_leads_out_links_the_symlink(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    _apply([("s", "symlink", str(outside / "keep")), ("h", "hardlink", "s")], root)
    assert os.path.islink(root / "h") and os.readlink(root / "h") == str(outside / "keep")
    assert os.stat(outside / "keep").st_nlink == 1  # the host file gained no link
    _untouched(root, outside)


def test_a_later_layer_cannot_write_through_a_dir_it_turned_into_a_symlink(workdir: Path) -> None:
    outside = workdir / "outside"
    outside.mkdir()
    l1, l2, l3 = (workdir / f"l{i}" for i in (1, 2, 3))
    _apply([("d/", "dir"), ("d/x", "file", "1")], l1)
    _apply([("d", "symlink", str(outside))], l2, lowers=[l1])
    # in one layer: refused
    with pytest.raises(errors.UnsafeContent, match="outside"):
        _apply([("e/", "dir"), ("e", "symlink", "/"), (f"e{outside}/escaped", "file", "x")], workdir / "one")
    # across layers: the lower layer's symlink is not followed; the upper gets a real
    # directory (overlayfs then shows it alone, over the symlink below)
    _apply([("d/escaped", "file", "x")], l3, lowers=[l2, l1])
    assert os.listdir(outside) == []
    assert not os.path.islink(l3 / "d") and (l3 / "d" / "escaped").read_text() == "x"


def test_a_layer_with_an_overlong_name_is_a_400_through_the_api(daemon: Daemon) -> None:
    c = daemon.client()
    with pytest.raises(errors.InvalidArgument, match="cannot be created"):
        c.images.import_(
            io.BytesIO(tar_bytes([("ok", "file", "1"), ("y" * 300, "file", "x")])), name="long:1"
        )
    assert c.images.list() == []
    assert list((daemon.root / "content" / "ingest").iterdir()) == []


def test_an_image_deeper_than_the_recursion_limit_lists_and_removes(daemon: Daemon) -> None:
    # Sizes are measured and trees deleted without recursing per level.
    deep = "/".join(["d"] * 1200)
    c = daemon.client()
    c.images.import_(io.BytesIO(tar_bytes([(deep + "/leaf", "file", "x")])), name="deep:1")
    [img] = c.images.list()
    assert img.unpacked_size > 1200 * 512
    c.images.remove("deep:1")
    assert c.images.list() == []
    snaps = daemon.root / "snapshots" / "overlay"
    assert [p for p in snaps.iterdir() if p.name.isdigit()] == []


def test_a_layer_can_replace_a_tree_deeper_than_the_recursion_limit(workdir: Path) -> None:
    root = workdir / "tree"
    deep = "/".join(["d"] * 1050)  # each level is a frame of shutil.rmtree
    _apply([(f"top/{deep}/leaf", "file", "x"), ("top", "file", "now a file")], root)
    assert (root / "top").read_text() == "now a file"
