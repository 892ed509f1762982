"""The layer of a COPY/ADD (or a WORKDIR's directory) written from its sources: a
gzip (isal) tar into the content store, parents the image lacks made 0755 root, hard
links within what is copied kept, ADD's local tars extracted; (diff ID, digest, size)."""

from __future__ import annotations

import copy
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.snapshots.diff import HashingWriter, ToWriter

if TYPE_CHECKING:
    from podkit.store.api import ContentWriter


def write_copy_layer(
    w: ContentWriter,
    items: list[tuple[str, Path | bytes]],
    dest: str,
    into_dir: bool,
    chown: tuple[int, int] | None,
    chmod: int | None,
    exists: Callable[[str], Path | None],
    extract_tars: bool,
    mkdir_only: bool = False,
) -> tuple[str, str, int]:
    from isal import igzip

    gz = igzip.IGzipFile(fileobj=ToWriter(w), mode="wb", compresslevel=1, mtime=0)  # type: ignore[no-untyped-call]  # isal: no types
    raw = HashingWriter(gz)
    entries: dict[str, tarfile.TarInfo] = {}
    data: dict[str, Path | bytes] = {}
    links: dict[tuple[int, int], str] = {}

    def add_dir(rel: str, src: Path | None, forced: bool = False) -> None:
        if rel in entries:
            return
        ti = tarfile.TarInfo(rel)
        ti.type = tarfile.DIRTYPE
        if src is not None:
            st = os.lstat(src)
            ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            ti.uid, ti.gid = (st.st_uid, st.st_gid) if chown is None else chown
        else:
            ti.mode = 0o755
            ti.uid, ti.gid = chown if (chown and forced) else (0, 0)
        if chmod is not None and src is not None:
            ti.mode = chmod
        entries[rel] = ti

    def parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in entries and exists(p) is None:
                add_dir(p, None)

    def add_path(rel: str, src: Path) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            add_dir(rel, src)
            for name in sorted(os.listdir(src)):
                add_path(f"{rel}/{name}", src / name)
            return
        ti = tarfile.TarInfo(rel)
        ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        ti.uid, ti.gid = chown if chown is not None else (0, 0)
        if chmod is not None:
            ti.mode = chmod
        if stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(src)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
            # hard links within what is copied stay links (as buildah and docker keep them)
            ti.type, ti.linkname = tarfile.LNKTYPE, links[(st.st_dev, st.st_ino)]
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = rel
            ti.size = st.st_size
            data[rel] = src
        else:
            return
        entries[rel] = ti

    d = dest.strip("/")
    if mkdir_only:
        parents(d + "/x")
        if d and d not in entries:
            add_dir(d, None, forced=True)
    for name, src in items:
        if isinstance(src, bytes):
            rel = f"{d}/{name}".strip("/") if into_dir else d
            parents(rel)
            ti = tarfile.TarInfo(rel)
            ti.size, ti.mode, ti.mtime = len(src), chmod if chmod is not None else 0o644, 0
            ti.uid, ti.gid = chown or (0, 0)
            entries[rel], data[rel] = ti, src
            continue
        # never through a symlink: its target may be anywhere on the daemon's host
        if extract_tars and not src.is_symlink() and src.is_file() and _is_tar(src):
            parents(d + "/x")
            _add_tar_entries(src, d, entries, data)
            continue
        if src.is_dir() and not src.is_symlink():
            parents(d + "/x")
            if d and d not in entries and exists(d) is None:
                add_dir(d, None, forced=True)
            for n in sorted(os.listdir(src)):
                add_path(f"{d}/{n}".strip("/"), src / n)
            continue
        target_is_dir = into_dir or (exists(d) is not None and exists(d).is_dir())  # type: ignore[union-attr]
        rel = f"{d}/{name}".strip("/") if target_is_dir else d
        parents(rel)
        add_path(rel, src)
    with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        for rel in entries:  # walk order: parents first, a link after its target
            ti = entries[rel]
            ti.uname = ti.gname = ""
            payload = data.get(rel)
            if isinstance(payload, bytes):
                tf.addfile(ti, io.BytesIO(payload))
            elif isinstance(payload, Path):
                with open(payload, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    gz.close()
    digest = w.commit()
    return raw.digest(), str(digest), w.offset


def _is_tar(p: Path) -> bool:
    try:
        return tarfile.is_tarfile(p)
    except OSError:
        return False


def _add_tar_entries(
    src: Path, d: str, entries: dict[str, tarfile.TarInfo], data: dict[str, Path | bytes]
) -> None:
    """ADD of a local tar: its members land below ``d`` (read into memory: contexts are
    local files the user chose; names are normalised and may not climb out)."""
    with tarfile.open(src, "r:*") as tf:
        for m in tf:
            name = os.path.normpath(m.name.lstrip("/"))
            if name.startswith("..") or name == ".":
                continue
            rel = f"{d}/{name}".strip("/")
            m2 = copy.copy(m)
            m2.name = rel
            if m.isfile():
                f = tf.extractfile(m)
                data[rel] = f.read() if f else b""
            elif m.islnk():
                m2.linkname = f"{d}/{os.path.normpath(m.linkname.lstrip('/'))}".strip("/")
            elif not (m.isdir() or m.issym() or m.isfifo()):
                continue
            entries[rel] = m2
