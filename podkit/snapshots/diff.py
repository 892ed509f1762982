"""A writable snapshot's changes: as a list (``podkit diff``) and as an OCI layer tar.

The overlay snapshotter's upper dir *is* the change set: new and changed entries, a
character device 0/0 for a deletion (written as a ``.wh.<name>`` whiteout) and a
directory marked opaque (``trusted.overlay.opaque=y``: its lower content is hidden,
written as ``<dir>/.wh..wh..opq``). The copying snapshotter keeps full trees, so its
changes come from a walk comparing the tree with its parent's (type, mode, owner,
size, mtime, link target, xattrs).

The tar is reproducible: entries sorted by name, PAX headers with whole-second
mtimes, no user or group names, hard links kept as links to the first name seen.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from podkit.snapshots.api import Snapshotter

ADDED = "A"
CHANGED = "C"
DELETED = "D"

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_XATTR = "trusted.overlay."
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Change:
    kind: str  # A, C or D
    path: str  # absolute in the container ("/etc/passwd")
    source: Path | None  # where its content is read (None for a deletion)
    opaque: bool = False  # a directory whose lower content is hidden


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for n in sorted(names):
        if n.startswith(OVERLAY_XATTR):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
    return out


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _in_lowers(rel: str, lowers: list[Path]) -> bool:
    """Whether ``rel`` exists in the merged lower trees (nearest first; a whiteout or an
    opaque directory above hides what is below)."""
    parts = rel.split("/")
    for low in lowers:
        st = _lstat(low / rel)
        if st is not None:
            return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
        # A whiteout or an opaque dir for an ancestor in this lower hides the rest.
        for i in range(1, len(parts)):
            anc = low.joinpath(*parts[:i])
            ast = _lstat(anc)
            if ast is None:
                break
            if stat.S_ISCHR(ast.st_mode) and ast.st_rdev == 0:
                return False
            if not stat.S_ISDIR(ast.st_mode):
                return False
            if _is_opaque(anc) and i < len(parts):
                # content below an opaque ancestor comes from this lower only
                return False
    return False


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def overlay_changes(
    upper: Path, lowers: list[Path], skip: frozenset[str] = frozenset(), dropped: list[str] | None = None
) -> list[Change]:
    """The changes an overlay upper dir holds over its lower dirs (nearest first).

    ``dropped`` receives the upper entries the changes leave out (relative paths,
    children before their directory): skipped mount targets, directories only copied
    up for them, whiteouts of nothing. Without them the upper dir is the layer
    (``prune``)."""
    out: list[Change] = []
    gone = dropped if dropped is not None else []

    def walk(rel: str) -> bool:
        """Emit the changes below ``rel``; whether any were emitted."""
        any_out = False
        for name in _listdir(upper / rel if rel else upper):
            crel = f"{rel}/{name}" if rel else name
            src = upper / crel
            st = os.lstat(src)
            cpath = "/" + crel
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                if _in_lowers(crel, lowers):
                    out.append(Change(DELETED, cpath, None))
                    any_out = True
                else:
                    gone.append(crel)
                continue
            if cpath in skip and _empty(src, st):
                gone.append(crel)
                continue
            existed = _in_lowers(crel, lowers)
            kind = CHANGED if existed else ADDED
            if stat.S_ISDIR(st.st_mode):
                opaque = _is_opaque(src)
                at = len(out)
                out.append(Change(kind, cpath, src, opaque and existed))
                inner = walk(crel)
                if not inner and existed and not opaque and _same_meta(src, st, lowers, crel):
                    del out[at]  # only copied up for a child that was then skipped
                    gone.append(crel)
                    continue
                any_out = True
            else:
                out.append(Change(kind, cpath, src))
                any_out = True
        return any_out

    walk("")
    return out


def _empty(path: Path, st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        return not _listdir(path)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _same_meta(src: Path, st: os.stat_result, lowers: list[Path], rel: str) -> bool:
    for low in lowers:
        lst = _lstat(low / rel)
        if lst is not None:
            return (lst.st_mode, lst.st_uid, lst.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    return False


def tree_changes(
    tree: Path, parent: Path | None, skip: frozenset[str] = frozenset(), dropped: list[str] | None = None
) -> list[Change]:
    """The changes of a full tree against its parent's full tree (the copying snapshotter).

    ``dropped`` receives the new entries left out (skipped mount targets)."""
    out: list[Change] = []
    gone = dropped if dropped is not None else []

    def walk(rel: str) -> bool:
        any_out = False
        here = tree / rel if rel else tree
        there = (parent / rel if rel else parent) if parent is not None else None
        names = set(_listdir(here))
        old = set(_listdir(there)) if there is not None else set()
        for name in sorted(names | old):
            crel = f"{rel}/{name}" if rel else name
            cpath = "/" + crel
            if name not in names:
                out.append(Change(DELETED, cpath, None))
                any_out = True
                continue
            src = tree / crel
            st = os.lstat(src)
            pst = _lstat(parent / crel) if parent is not None and name in old else None
            if pst is None and cpath in skip and _empty(src, st):
                gone.append(crel)
                continue
            if pst is None:
                if stat.S_ISDIR(st.st_mode):
                    out.append(Change(ADDED, cpath, src))
                    _all_below(crel, out)
                else:
                    out.append(Change(ADDED, cpath, src))
                any_out = True
                continue
            assert parent is not None
            same_type = stat.S_IFMT(st.st_mode) == stat.S_IFMT(pst.st_mode)
            if stat.S_ISDIR(st.st_mode) and same_type:
                at = len(out)
                out.append(Change(CHANGED, cpath, src))
                inner = walk(crel)
                if not inner and _meta(st) == _meta(pst) and _xattrs(src) == _xattrs(parent / crel):
                    del out[at]
                    continue
                any_out = True
                continue
            if not same_type and stat.S_ISDIR(st.st_mode):
                # a file became a directory: the directory and all of it are new content
                out.append(Change(CHANGED, cpath, src))
                _all_below(crel, out)
                any_out = True
                continue
            if _file_changed(src, st, parent / crel, pst):
                out.append(Change(CHANGED, cpath, src))
                any_out = True
        return any_out

    def _all_below(rel: str, into: list[Change]) -> None:
        for name in _listdir(tree / rel):
            crel = f"{rel}/{name}"
            into.append(Change(ADDED, "/" + crel, tree / crel))
            if stat.S_ISDIR(os.lstat(tree / crel).st_mode):
                _all_below(crel, into)

    walk("")
    return out


def _meta(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mode, st.st_uid, st.st_gid)


def _file_changed(src: Path, st: os.stat_result, old: Path, pst: os.stat_result) -> bool:
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(pst.st_mode):
        return True
    if _meta(st) != _meta(pst) or st.st_mtime_ns != pst.st_mtime_ns or st.st_size != pst.st_size:
        return True
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(src) != os.readlink(old)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return st.st_rdev != pst.st_rdev
    return _xattrs(src) != _xattrs(old)


def snapshot_changes(
    snapshots: Snapshotter, key: str, skip: frozenset[str] = frozenset(), dropped: list[str] | None = None
) -> list[Change]:
    """The changes active snapshot ``key`` holds over its parent, however it is laid out
    (``dropped``: see overlay_changes)."""
    upper = snapshots.apply_dir(key)
    if snapshots.whiteouts == "overlay":
        return overlay_changes(upper, snapshots.lower_dirs(key), skip, dropped)
    parent = snapshots.stat(key).parent
    return tree_changes(upper, snapshots.tree(parent) if parent else None, skip, dropped)


def prune(tree: Path, dropped: list[str]) -> None:
    """Delete from an unmounted snapshot's own tree what its changes left out
    (``dropped``, children first), so that it holds what its layer would unpack to.
    OSError when an entry is not as the walk saw it (the tree is then not the layer's)."""
    for rel in dropped:
        p = tree / rel
        if stat.S_ISDIR(os.lstat(p).st_mode):
            os.rmdir(p)  # empty once its dropped children went; anything else is an error
        else:
            os.unlink(p)


# -- the layer tar -------------------------------------------------------------------


def _whiteout_name(path: str) -> str:
    head, _, base = path.rpartition("/")
    return f"{head.lstrip('/')}/{WHITEOUT_PREFIX}{base}".lstrip("/")


def _entries(changes: list[Change]) -> Iterator[tuple[str, Change | None]]:
    """(tar name, change) in name order; None for a synthesised opaque marker."""
    for c in changes:
        if c.kind == DELETED:
            yield _whiteout_name(c.path), c
            continue
        yield c.path.lstrip("/"), c
        if c.opaque:
            yield c.path.lstrip("/") + "/" + OPAQUE_MARKER, None


def write_layer(changes: list[Change], out: BinaryIO) -> None:
    """Write ``changes`` as an uncompressed OCI layer tar to ``out``."""
    links: dict[tuple[int, int], str] = {}
    entries = sorted(_entries(changes), key=lambda e: e[0])
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, c in entries:
            if c is None or c.kind == DELETED:
                ti = tarfile.TarInfo(name)
                ti.type = tarfile.REGTYPE
                ti.mode = 0o644
                ti.mtime = 0
                tf.addfile(ti)
                continue
            assert c.source is not None
            add_entry(tf, name, c.source, links)


def add_entry(tf: tarfile.TarFile, name: str, src: Path, links: dict[tuple[int, int], str]) -> None:
    st = os.lstat(src)
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    xattrs = _xattrs(src)
    if xattrs:
        ti.pax_headers = {
            "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
        }
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            ti.type = tarfile.LNKTYPE
            ti.linkname = links[key]
            tf.addfile(ti)
            return
        if st.st_nlink > 1:
            links[key] = name
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
        with open(src, "rb") as f:
            tf.addfile(ti, f)
        return
    if fmt == stat.S_IFDIR:
        ti.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFLNK:
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(src)
    elif fmt == stat.S_IFCHR or fmt == stat.S_IFBLK:
        ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        ti.type = tarfile.FIFOTYPE
    else:
        return  # sockets have no tar form (docker drops them too)
    tf.addfile(ti)


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Accepts(Protocol):
    def write(self, data: bytes, /) -> object: ...


class ToWriter:
    """A file-like face on a writer that takes only ``bytes`` (a content writer), for
    gzip, which hands on memoryviews and calls ``flush``."""

    def __init__(self, w: _Accepts) -> None:
        self.w = w

    def write(self, data: bytes) -> int:
        self.w.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class HashingWriter:
    """A file object that hashes what passes and hands it on (the diff ID of a layer
    computed while it is compressed)."""

    def __init__(self, inner: Writable) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()
