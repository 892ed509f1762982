"""Apply one layer tar (plain, gzip or zstd) onto a directory, safely.

The layer is read as a stream (no seeking, no temp files) and hashed as it is
read, so the diff ID (sha256 of the uncompressed tar) comes out at the end.

Whiteouts (OCI image spec, "Whiteouts"):

- ``overlay`` mode writes into an overlay upper dir: ``.wh.NAME`` becomes a 0:0
  character device named NAME, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y``
  xattr on its directory, just as overlayfs itself records deletions;
- ``remove`` mode (a full copy of the lower layers) deletes what they name.

Safety: every entry must land inside ``root``. Names that are absolute or climb
out with ``..`` are refused; parent directories are resolved one component at a
time with lstat, and a symlink on the way is followed only when it is relative
and stays inside ``root`` — an absolute symlink or one climbing out is refused.
Hard links must name a path inside ``root`` too. The final component is never
followed: an existing entry is replaced, not written through. A refused layer
raises ``UnsafeContent`` naming the entry; the caller throws the tree away.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from podkit.errors import InvalidArgument, PodkitError, UnsafeContent

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
_META_PREFIX = ".wh..wh."
_CHUNK = 1 << 20
# xattrs a layer may not set: they would steer overlayfs itself (redirects, metacopy).
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


class _HashingReader:
    """Wraps the decompressed stream: hashes and counts everything read past it.

    It is the file ``tarfile`` reads (in its random-access mode, given a file that
    only ever seeks forward): ``tarfile``'s own stream mode re-buffers every block
    several times (joins and slices of its buffer, its member file's buffer), which
    cost more CPU than the decompression and the hashing together. Here a member's
    data is read straight from the decompressor (``copy_to``), and a forward seek
    reads what it skips, so every byte of the tar is hashed once, in order.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0
        self._buf = b""  # read ahead of the position (a header block's remainder)

    def read(self, n: int = -1) -> bytes:
        if self._buf:
            if n < 0 or n >= len(self._buf):
                data, self._buf = self._buf, b""
                return data + self.read(n - len(data)) if n < 0 or n > len(data) else data
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        if n == 0:
            return b""
        data = self._f.read(n) if n is not None and n >= 0 else self._f.read()
        self.hash.update(data)
        self.size += len(data)
        return data

    def tell(self) -> int:
        return self.size - len(self._buf)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < self.tell():
            raise InvalidArgument("layer tar: a backward seek in a stream")
        while pos > self.tell():
            if not self.read(min(_CHUNK, pos - self.tell())):
                break  # past the end: tarfile then finds no more headers
        return self.tell()

    def copy_to(self, fd: int, size: int) -> int:
        """Write the next ``size`` bytes to ``fd``; returns how many there were."""
        done = 0
        while done < size:
            chunk = self.read(min(_CHUNK, size - done))
            if not chunk:
                break
            _write_all(fd, chunk)
            done += len(chunk)
        return done

    def drain(self) -> None:
        while True:
            data = self.read(_CHUNK)
            if not data:
                return


def decompressed(src: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=src, mode="rb")  # type: ignore[no-untyped-call,return-value]  # isal: no types
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    if compression in ("", None):
        return src
    raise InvalidArgument(f"unsupported layer compression {compression!r}")


def sniff_compression(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return ""


def apply_layer(
    src: BinaryIO,
    compression: str,
    target_dir: str | os.PathLike[str],
    whiteouts: str = "overlay",
    lowers: list[Path] | None = None,
) -> str:
    """Apply a layer tar onto ``target_dir``; return its diff ID (``sha256:...``).

    ``lowers`` (nearest first) are the read-only layers below an overlay upper dir:
    hard links to files that live only there are copied up, and parent directories
    created in the upper dir take their metadata from there.
    """
    reader = _HashingReader(decompressed(src, compression))
    applier = _Applier(Path(target_dir), whiteouts, lowers or [])
    try:
        with tarfile.open(fileobj=reader, mode="r:", errorlevel=2) as tf:  # type: ignore[call-overload]
            for member in _members(tf):
                applier.entry(tf, member, reader)
        applier.finish()
        reader.drain()
    except PodkitError:
        raise
    except tarfile.TarError as e:
        raise InvalidArgument(f"layer is not a valid tar archive: {e}") from None
    except OSError as e:
        if e.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            # a name the file system cannot hold: the layer's fault, not the host's
            name = os.path.basename(str(e.filename or ""))[:100]
            raise InvalidArgument(f"a layer entry cannot be created ({e.strerror}): {name!r}") from None
        if e.errno not in (None, 0) and not _is_format_error(e):
            raise  # a real I/O failure (disk full...), not bad data
        raise InvalidArgument(f"layer data is corrupt or truncated: {e}") from None
    except Exception as e:
        # Decompressors raise their own error types (zstandard.ZstdError, isal's zlib errors).
        if not _is_format_error(e) and not isinstance(e, EOFError):
            raise
        raise InvalidArgument(f"layer data is corrupt or truncated: {e}") from None
    return "sha256:" + reader.hash.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members as they come, forgetting them (a layer may hold many files)."""
    while (m := tf.next()) is not None:
        tf.members.clear()  # type: ignore[attr-defined]  # the list next() appends to; untyped
        yield m


def _is_format_error(e: BaseException) -> bool:
    return type(e).__name__ in ("BadGzipFile", "ZstdError", "error", "IsalError") or isinstance(e, EOFError)


class _Applier:
    def __init__(self, root: Path, whiteouts: str, lowers: list[Path]) -> None:
        if whiteouts not in ("overlay", "remove"):
            raise InvalidArgument(f"unknown whiteout mode {whiteouts!r}")
        self.root = root
        self.root_s = os.fspath(root)
        self.overlay = whiteouts == "overlay"
        self.lowers = lowers
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.written: set[str] = set()  # paths this layer wrote, for opaque dirs in remove mode
        # Parent dirs already resolved (rel -> host path). Only a removal or replacement
        # can turn a directory into something else, so any of those empties the cache.
        self._dirs_seen: dict[str, str] = {}

    # -- names ---------------------------------------------------------------------

    def _clean(self, name: str) -> str:
        """The entry's path relative to root, normalised; refuses escaping names."""
        if name.startswith("/"):
            raise UnsafeContent(f"layer entry {name!r} has an absolute path")
        parts: list[str] = []
        for p in name.split("/"):
            if p in ("", "."):
                continue
            if p == "..":
                if not parts:
                    raise UnsafeContent(f"layer entry {name!r} climbs out of the root with '..'")
                parts.pop()
                continue
            if "\x00" in p:
                raise UnsafeContent(f"layer entry {name!r} has a NUL byte in its name")
            parts.append(p)
        return "/".join(parts)

    def _resolve_parent(self, rel: str, entry: str, create: bool = True) -> str:
        """Absolute host path of rel's parent dir, made safe (see module docstring)."""
        key = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if not key:
            return self.root_s
        hit = self._dirs_seen.get(key)
        if hit is not None:
            return hit
        resolved = self._walk_parent(rel, entry, create)
        self._dirs_seen[key] = resolved
        return resolved

    def _forget(self) -> None:
        self._dirs_seen.clear()

    def _walk_parent(self, rel: str, entry: str, create: bool) -> str:
        parts = rel.split("/")[:-1]
        cur: list[str] = []
        hops = 0
        while parts:
            p = parts.pop(0)
            if p in ("", "."):
                continue
            if p == "..":
                if not cur:
                    raise UnsafeContent(f"layer entry {entry!r} leads out of the root through a symlink")
                cur.pop()
                continue
            path = os.path.join(self.root_s, *cur, p)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise
                self._mkparent(cur + [p])
                cur.append(p)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > 40:
                    raise UnsafeContent(f"layer entry {entry!r}: too many levels of symlinks")
                target = os.readlink(path)
                if target.startswith("/"):
                    raise UnsafeContent(
                        f"layer entry {entry!r} is written through symlink {'/'.join(cur + [p])!r} "
                        f"-> {target!r}, which points outside the layer"
                    )
                parts = target.split("/") + parts
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not create:
                    raise FileNotFoundError(path)
                # A file in the way of a directory: the layer replaces it.
                self._forget()
                os.unlink(path)
                self._mkparent(cur + [p])
            cur.append(p)
        return os.path.join(self.root_s, *cur)

    def _mkparent(self, parts: list[str]) -> None:
        """Create a missing directory, copying its metadata from a lower layer if one has it."""
        path = os.path.join(self.root_s, *parts)
        for lower in self.lowers:
            candidate = os.path.join(lower, *parts)
            # Only a real directory inside that layer counts: a symlinked component in
            # the lower tree could point at the host's file system.
            if not _plain_path_in(lower, "/".join(parts)):
                break
            try:
                st = os.lstat(candidate)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(path, stat.S_IMODE(st.st_mode))
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, stat.S_IMODE(st.st_mode))
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                return
            break
        os.mkdir(path, 0o755)

    # -- entries -------------------------------------------------------------------

    def entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo, src: _HashingReader) -> None:
        rel = self._clean(m.name)
        base = rel.rsplit("/", 1)[-1]
        if rel == "":
            if m.isdir():
                self.dirs.append(("", m))
                return
            raise UnsafeContent(f"layer entry {m.name!r} would replace the root directory")
        if base != OPAQUE and any(p.startswith(_META_PREFIX) for p in rel.split("/")):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content, skipped as docker does
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(rel, base, m.name)
            return
        parent = self._resolve_parent(rel, m.name)
        path = os.path.join(parent, base)
        self.written.add(rel)
        existing = _lstat(path)
        if m.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self._forget()
                os.unlink(path)
                existing = None
            if existing is None:
                os.mkdir(path, 0o700)
            self.dirs.append((rel, m))
            return
        if existing is not None:
            self._forget()
            _remove(path, existing)
        if m.isreg():
            self._file(tf, m, path, src)
            return  # metadata set through the descriptor
        if m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            self._hardlink(m, path)
            return  # a hard link shares the target's inode and metadata
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise InvalidArgument(f"layer entry {m.name!r} has an unsupported type {m.type!r}")
        self._meta(path, m)

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, path: str, src: _HashingReader) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if m.sparse is None:
                src.seek(m.offset_data)
                if src.copy_to(fd, m.size) != m.size:
                    raise InvalidArgument(f"layer data is corrupt or truncated: entry {m.name!r} ends early")
            else:  # GNU sparse: tarfile maps the holes
                data = tf.extractfile(m)
                assert data is not None
                remaining = m.size
                while remaining > 0:
                    chunk = data.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise InvalidArgument(
                            f"layer data is corrupt or truncated: entry {m.name!r} ends early"
                        )
                    _write_all(fd, chunk)
                    remaining -= len(chunk)
            # Through the open descriptor: no more path lookups for this file.
            self._meta(fd, m)
        finally:
            os.close(fd)

    def _hardlink(self, m: tarfile.TarInfo, path: str) -> None:
        try:
            trel = self._clean(m.linkname)
        except UnsafeContent:
            raise UnsafeContent(
                f"layer entry {m.name!r} is a hard link to {m.linkname!r}, outside the layer"
            ) from None
        if not trel:
            raise UnsafeContent(f"layer entry {m.name!r} is a hard link to the root directory")
        try:
            tparent = self._resolve_parent(trel, m.name, create=False)
        except FileNotFoundError:
            tparent = None
        target = os.path.join(tparent, trel.rsplit("/", 1)[-1]) if tparent else None
        st = _lstat(target) if target else None
        if st is None and self.overlay:
            target, st = self._copy_up(trel)
        if st is None or target is None:
            raise InvalidArgument(f"layer entry {m.name!r} links to {m.linkname!r}, which does not exist")
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeContent(f"layer entry {m.name!r} is a hard link to directory {m.linkname!r}")
        os.link(target, path, follow_symlinks=False)
        self.written.add(self._clean(m.name))

    def _copy_up(self, trel: str) -> tuple[str | None, os.stat_result | None]:
        """A hard link to a file of a lower layer: copy it into the upper dir first."""
        for lower in self.lowers:
            src = os.path.join(lower, trel)
            if not _plain_path_in(lower, os.path.dirname(trel)):
                continue
            st = _lstat(src)
            if st is None or stat.S_ISDIR(st.st_mode):
                continue
            dst = os.path.join(self._resolve_parent(trel, trel), trel.rsplit("/", 1)[-1])
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            else:
                os.mknod(dst, st.st_mode, st.st_rdev)
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return dst, os.lstat(dst)
        return None, None

    def _whiteout(self, rel: str, base: str, entry: str) -> None:
        dir_rel = rel.rsplit("/", 1)[0] if "/" in rel else ""
        parent = self._resolve_parent(rel, entry)
        if base == OPAQUE:
            if self.overlay:
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
            else:
                prefix = dir_rel + "/" if dir_rel else ""
                for name in os.listdir(parent):
                    if prefix + name not in self.written:
                        p = os.path.join(parent, name)
                        st = _lstat(p)
                        if st is not None:
                            self._forget()
                            _remove(p, st)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if not name or name in (".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeContent(f"layer entry {entry!r} is a malformed whiteout")
        path = os.path.join(parent, name)
        existing = _lstat(path)
        if existing is not None:
            self._forget()
            _remove(path, existing)
        if self.overlay:
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def _meta(self, path: str | int, m: tarfile.TarInfo) -> None:
        """Owner, xattrs, mode, mtime, on a path (never followed) or an open descriptor."""
        link = m.issym()
        nofollow: dict[str, Any] = {} if isinstance(path, int) else {"follow_symlinks": False}
        os.chown(path, m.uid, m.gid, **nofollow)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr.") :]
                if name.startswith(_FORBIDDEN_XATTR_PREFIXES):
                    continue
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
                try:
                    os.setxattr(path, name, raw, **nofollow)
                except OSError as e:
                    # Symlinks take no user.* xattrs; file systems may refuse others. Not fatal.
                    if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                        raise
        if not link:
            # After chown: chown clears setuid/setgid bits.
            os.chmod(path, stat.S_IMODE(m.mode))
        mtime = int(float(m.mtime) * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), **nofollow)

    def finish(self) -> None:
        # Directories last, deepest first: writing their contents changed their mtimes.
        # Resolved again, safely: a later entry may have swapped a parent for a symlink.
        for rel, m in reversed(self.dirs):
            if rel == "":
                path = self.root_s
            else:
                try:
                    parent = self._resolve_parent(rel, m.name, create=False)
                    path = os.path.join(parent, rel.rsplit("/", 1)[-1])
                except FileNotFoundError:
                    continue
            st = _lstat(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                self._meta(path, m)


def _plain_path_in(base: str | os.PathLike[str], rel: str) -> bool:
    """Whether base/rel names the same place with every symlink resolved (no component
    of rel is a symlink, so reading there cannot leave ``base``)."""
    real_base = os.path.realpath(base)
    want = os.path.normpath(os.path.join(real_base, rel)) if rel else real_base
    return os.path.realpath(os.path.join(base, rel) if rel else base) == want


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        try:
            shutil.rmtree(path)
        except RecursionError:  # a lower layer's tree deeper than Python recurses
            from podkit.snapshots.base import remove_tree

            remove_tree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
