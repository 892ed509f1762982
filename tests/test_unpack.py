"""Layer application: every entry type kept, whiteouts both ways, and malicious layers refused."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from podkit import errors
from podkit.images.oci import OCI_LAYER, OCI_LAYER_GZIP, Descriptor
from podkit.images.service import ImageService, chain_id_of
from podkit.images.unpack import apply_layer
from podkit.snapshots import OverlaySnapshotter
from podkit.store import ContentStore, Database
from tests.fixtures.images import tar_bytes

# Layers carry root-owned files, device nodes and whiteouts (chown, mknod): root.
pytestmark = pytest.mark.root

MTIME = 1_600_000_000


def apply(data: bytes, target: Path, compression: str = "", **kw: object) -> str:
    target.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), compression, target, **kw)  # type: ignore[arg-type]


def test_entry_types_and_metadata(workdir: Path) -> None:
    layer = tar_bytes(
        [
            ("etc", "dir", None, {"mode": 0o750, "uid": 3, "gid": 4, "mtime": MTIME - 100}),
            ("etc/conf", "file", "hello", {"mode": 0o640, "uid": 1000, "gid": 1001}),
            ("bin/su", "file", "x", {"mode": 0o4755}),
            ("link", "symlink", "etc/conf", {"uid": 7, "gid": 8}),
            ("hard", "hardlink", "etc/conf"),
            ("dev/null", "chr", None, {"devmajor": 1, "devminor": 3, "mode": 0o666}),
            ("dev/loop0", "blk", None, {"devmajor": 7, "devminor": 0}),
            ("fifo", "fifo"),
            (
                "attr",
                "file",
                "a",
                {
                    "pax_headers": {
                        "SCHILY.xattr.user.note": "kept",
                        "SCHILY.xattr.trusted.overlay.redirect": "/evil",
                    }
                },
            ),
        ]
    )
    root = workdir / "root"
    diff_id = apply(layer, root)
    assert diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    st = os.lstat(root / "etc/conf")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o640)
    assert (root / "etc/conf").read_text() == "hello"
    assert stat.S_IMODE(os.lstat(root / "bin/su").st_mode) == 0o4755  # setuid survives chown
    # Directory metadata is set after its contents were written.
    dst = os.lstat(root / "etc")
    assert (dst.st_mtime, stat.S_IMODE(dst.st_mode), dst.st_uid, dst.st_gid) == (MTIME - 100, 0o750, 3, 4)
    assert os.lstat(root / "etc/conf").st_mtime == MTIME
    lst = os.lstat(root / "link")
    assert stat.S_ISLNK(lst.st_mode) and os.readlink(root / "link") == "etc/conf"
    assert (lst.st_uid, lst.st_gid, lst.st_mtime) == (7, 8, MTIME)
    assert os.lstat(root / "hard").st_ino == st.st_ino
    d = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(d.st_mode) and os.major(d.st_rdev) == 1 and os.minor(d.st_rdev) == 3
    assert stat.S_ISBLK(os.lstat(root / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert os.getxattr(root / "attr", "user.note") == b"kept"
    assert "trusted.overlay.redirect" not in os.listxattr(root / "attr")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layers_give_the_uncompressed_diff_id(workdir: Path, compression: str) -> None:
    plain = tar_bytes([("a", "file", "x" * 5000)])
    got = apply(tar_bytes([("a", "file", "x" * 5000)], compression), workdir / "r", compression)
    assert got == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (workdir / "r/a").read_text() == "x" * 5000


def test_overlay_whiteouts_and_opaque_dirs(workdir: Path) -> None:
    upper = workdir / "upper"
    apply(
        tar_bytes(
            [
                ("gone", "file", ""),
                ("d", "dir"),
                ("d/.wh..wh..opq", "file", ""),
                ("d/new", "file", "n"),
                (".wh.old", "file", ""),
            ]
        ),
        upper,
        whiteouts="overlay",
    )
    wh = os.lstat(upper / "old")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    assert (upper / "d/new").read_text() == "n"


def test_aufs_metadata_is_skipped(workdir: Path) -> None:
    root = workdir / "r"
    apply(
        tar_bytes(
            [
                (".wh..wh.plnk", "dir"),
                (".wh..wh.plnk/1.2", "file", "x"),
                (".wh..wh.aufs", "file", ""),
                ("real", "file", "y"),
            ]
        ),
        root,
    )
    assert os.listdir(root) == ["real"]


def test_remove_mode_whiteouts_delete(workdir: Path) -> None:
    root = workdir / "full"
    apply(
        tar_bytes(
            [
                ("keep", "file", "k"),
                ("old", "file", "o"),
                ("d", "dir"),
                ("d/a", "file", ""),
                ("d/b", "file", ""),
            ]
        ),
        root,
        whiteouts="remove",
    )
    apply(
        tar_bytes([(".wh.old", "file", ""), ("d/c", "file", "c"), ("d/.wh..wh..opq", "file", "")]),
        root,
        whiteouts="remove",
    )
    assert sorted(os.listdir(root)) == ["d", "keep"]
    assert os.listdir(root / "d") == ["c"]  # opaque: lower entries gone, this layer's kept


def test_hardlink_to_lower_layer_is_copied_up(workdir: Path) -> None:
    lower, upper = workdir / "lower", workdir / "upper"
    apply(
        tar_bytes([("bin", "dir", None, {"mode": 0o711}), ("bin/tool", "file", "T", {"mode": 0o755})]), lower
    )
    apply(tar_bytes([("bin/alias", "hardlink", "bin/tool")]), upper, lowers=[lower])
    assert (upper / "bin/alias").read_text() == "T"
    assert os.lstat(upper / "bin/alias").st_ino == os.lstat(upper / "bin/tool").st_ino
    # The parent made in the upper dir took the lower dir's mode.
    assert stat.S_IMODE(os.lstat(upper / "bin").st_mode) == 0o711


def test_lower_layer_symlinks_are_not_followed_to_the_host(workdir: Path) -> None:
    """Lower layers may hold absolute symlinks (lib -> /usr/lib); writing through an upper
    dir must never read metadata or copy files from where they point on the host."""
    host = workdir / "hostdir"
    (host / "sub").mkdir(parents=True)
    os.chmod(host / "sub", 0o701)
    (host / "secret").write_text("host file")
    lower, upper = workdir / "lower", workdir / "upper"
    apply(tar_bytes([("l", "symlink", str(host))]), lower)
    apply(tar_bytes([("l/sub/x", "file", "1")]), upper, lowers=[lower])
    assert stat.S_IMODE(os.lstat(upper / "l" / "sub").st_mode) == 0o755  # not the host dir's 0701
    with pytest.raises(errors.InvalidArgument, match="does not exist"):
        apply(tar_bytes([("h", "hardlink", "l/secret")]), workdir / "upper2", lowers=[lower])
    assert not (workdir / "upper2" / "h").exists()


MALICIOUS = {
    "dotdot": [("../escaped", "file", "x")],
    "dotdot-nested": [("a/../../escaped", "file", "x")],
    "absolute": [("/escaped", "file", "x")],
    "symlink-absolute-write-through": [("evil", "symlink", "{outside}"), ("evil/escaped", "file", "x")],
    "symlink-relative-write-through": [("evil", "symlink", "../outside"), ("evil/escaped", "file", "x")],
    "symlink-dotdot-dir": [("up", "symlink", ".."), ("up/outside/escaped", "file", "x")],
    "symlink-chain": [("a", "symlink", "b"), ("b", "symlink", "../outside"), ("a/escaped", "file", "x")],
    "hardlink-outside": [("h", "hardlink", "../outside/secret")],
    "hardlink-absolute": [("h", "hardlink", "{outside}/secret")],
    "hardlink-through-symlink": [("s", "symlink", "/"), ("h", "hardlink", "s/etc/passwd")],
    "whiteout-through-symlink": [("s", "symlink", "{outside}"), ("s/.wh.secret", "file", "")],
    "opaque-through-symlink": [("s", "symlink", "../outside"), ("s/.wh..wh..opq", "file", "")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_layers_refused(workdir: Path, case: str) -> None:
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    before = sorted(os.listdir(outside))
    root = workdir / "root" / "tree"
    entries = [
        tuple(v.format(outside=outside) if isinstance(v, str) else v for v in e) for e in MALICIOUS[case]
    ]
    with pytest.raises(errors.UnsafeContent) as ei:
        apply(tar_bytes(entries), root)  # type: ignore[arg-type]
    # The error names the offending entry.
    assert repr(entries[-1][0].lstrip("/"))[1:-1] in ei.value.message or entries[-1][0] in ei.value.message
    assert sorted(os.listdir(outside)) == before
    assert (outside / "secret").read_text() == "s"
    assert not (workdir / "escaped").exists() and not (workdir / "root" / "escaped").exists()


def _corrupt(kind: str) -> tuple[str, bytes]:
    import gzip

    import zstandard

    good = tar_bytes([("a", "file", "x" * 100_000)])
    return {
        "not-a-tar": ("", b"this is not a tar" * 100),
        "truncated-tar": ("", good[:700]),
        "truncated-gzip": ("gzip", gzip.compress(good)[:-100]),
        "not-gzip": ("gzip", b"\x1f\x8bnot gzip at all"),
        "corrupt-zstd": ("zstd", zstandard.ZstdCompressor().compress(good)[:50] + b"garbage" * 10),
    }[kind]


@pytest.mark.parametrize("kind", ["not-a-tar", "truncated-tar", "truncated-gzip", "not-gzip", "corrupt-zstd"])
def test_corrupt_layers_are_invalid_argument(workdir: Path, kind: str) -> None:
    compression, data = _corrupt(kind)
    with pytest.raises(errors.InvalidArgument, match="corrupt|not a valid tar"):
        apply(data, workdir / "r", compression)


def test_service_apply_leaves_nothing_half_applied(workdir: Path) -> None:
    """A refused or mismatching layer leaves no snapshot; a good one is committed by chain ID."""
    db = Database(workdir / "m.db")
    content = ContentStore(workdir)
    sn = OverlaySnapshotter(db, workdir)
    svc = ImageService(db, content, sn)

    def blob(data: bytes, media: str = OCI_LAYER) -> Descriptor:
        return Descriptor(media, content.put(data), len(data))

    good = tar_bytes([("ok", "file", "1")])
    bad = tar_bytes([("fine", "file", "1"), ("../../x", "file", "2")])
    diff = "sha256:" + hashlib.sha256(good).hexdigest()
    with pytest.raises(errors.UnsafeContent):
        asyncio.run(svc.apply(blob(bad), None, "sha256:" + hashlib.sha256(bad).hexdigest()))
    assert sn.list() == []
    with pytest.raises(errors.DigestMismatch):
        asyncio.run(svc.apply(blob(good), None, "sha256:" + "0" * 64))
    assert sn.list() == []
    assert [p for p in sn.root.iterdir()] == []
    chain = asyncio.run(svc.apply(blob(good), None, diff))
    assert chain == diff and [i.key for i in sn.list()] == [diff]
    gz = tar_bytes([("two", "file", "2")], "gzip")
    diff2 = "sha256:" + hashlib.sha256(tar_bytes([("two", "file", "2")])).hexdigest()
    chain2 = asyncio.run(svc.apply(blob(gz, OCI_LAYER_GZIP), chain, diff2))
    assert chain2 == chain_id_of(chain, diff2)
    assert sn.stat(chain2).parent == chain
    # Applying again is a no-op.
    assert asyncio.run(svc.apply(blob(gz, OCI_LAYER_GZIP), chain, diff2)) == chain2
    assert len(sn.list()) == 2
    db.close()


def test_native_snapshotter_layers(workdir: Path) -> None:
    """The copying snapshotter through the service: whiteouts delete from the full copy."""
    from podkit.snapshots import NativeSnapshotter

    db = Database(workdir / "m.db")
    content = ContentStore(workdir)
    sn = NativeSnapshotter(db, workdir)
    svc = ImageService(db, content, sn)
    l1 = tar_bytes([("etc", "dir"), ("etc/a", "file", "1"), ("etc/b", "file", "2"), ("keep", "file", "k")])
    l2 = tar_bytes([("etc/.wh.a", "file", ""), ("etc/c", "file", "3")])
    c1 = asyncio.run(
        svc.apply(
            Descriptor(OCI_LAYER, content.put(l1), len(l1)), None, "sha256:" + hashlib.sha256(l1).hexdigest()
        )
    )
    c2 = asyncio.run(
        svc.apply(
            Descriptor(OCI_LAYER, content.put(l2), len(l2)), c1, "sha256:" + hashlib.sha256(l2).hexdigest()
        )
    )
    top = sn.fs(sn.stat(c2).id)
    assert sorted(os.listdir(top / "etc")) == ["b", "c"] and (top / "keep").read_text() == "k"
    # The lower snapshot is untouched.
    assert sorted(os.listdir(sn.fs(sn.stat(c1).id) / "etc")) == ["a", "b"]
    db.close()


@pytest.mark.parametrize("mode", ["overlay", "remove"])
def test_random_layers_never_write_outside(workdir: Path, mode: str) -> None:
    """Random mixes of dirs, files, symlinks (to .., /, siblings) and hard links: whatever
    is refused or applied, nothing appears or changes outside the root."""
    import random

    rnd = random.Random(f"20261127-{mode}")
    names = ["a", "b", "l", "..", ".", ".wh.a", ".wh..wh..opq"]
    targets = ["..", "../..", "/", "/etc", "a", "b/..", ".", "../outside", "l/..", "a/b"]
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")

    def snapshot_outside() -> list[tuple[str, int, float]]:
        out = []
        for dirpath, dirs, files in os.walk(workdir):
            dirs[:] = [d for d in dirs if not (Path(dirpath) / d).is_relative_to(workdir / "roots")]
            for n in dirs + files:
                st = os.lstat(os.path.join(dirpath, n))
                out.append((os.path.join(dirpath, n), st.st_mode, st.st_mtime))
        return sorted(out)

    before = snapshot_outside()
    refused = applied = 0
    for i in range(300):
        entries = []
        for _ in range(rnd.randint(1, 6)):
            name = "/".join(rnd.choice(names) for _ in range(rnd.randint(1, 3)))
            kind = rnd.choice(["file", "dir", "symlink", "symlink", "hardlink"])
            data = rnd.choice(targets) if kind in ("symlink", "hardlink") else "x"
            entries.append((name, kind, data))
        root = workdir / "roots" / str(i)
        try:
            apply(tar_bytes(entries), root, whiteouts=mode)  # type: ignore[arg-type]
            applied += 1
        except (errors.UnsafeContent, errors.InvalidArgument):
            refused += 1
        assert snapshot_outside() == before, f"layer {entries} changed something outside its root"
    assert (outside / "secret").read_text() == "s"
    assert refused > 20 and applied > 20  # both paths were exercised
