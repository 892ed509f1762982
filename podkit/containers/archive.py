"""``podkit cp``: tar streams out of and into a container's file system.

The container's processes may change its file system while a copy runs, so no path is
ever looked up twice by name from the host's root: the path asked for is resolved
inside the container's root through descriptors (:mod:`podkit.containers.rootfs_fd`,
``openat2(RESOLVE_IN_ROOT)``), and everything after is relative to the descriptors
that lookup returned. Reading a tree opens each entry with ``O_PATH | O_NOFOLLOW``
below its parent's descriptor and reads that very inode; extracting creates each
entry with ``O_EXCL``/``mkdirat``/``symlinkat``/``linkat`` below a parent directory
resolved inside the destination, and sets owner, mode and times on descriptors.

An archive being extracted may not name anything outside the destination (no
absolute names, no ``..``); its symlinks, and those already there, resolve inside
the destination directory when later entries are written through them, and its hard
links must name a file (not a symlink, not a directory) in the destination.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat as stat_mod
import tarfile
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, cast

from podkit.containers import rootfs_fd
from podkit.containers.process_root import ProcessRoot, open_process_root
from podkit.errors import Internal, InvalidArgument, NotFound, PodkitError, UnsafeContent
from podkit.snapshots.diff import OVERLAY_XATTR

log = logging.getLogger(__name__)

# Longer than PATH_MAX cannot name anything; refused before any lookup.
MAX_PATH_BYTES = 4095

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_PIN_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
# Errors that say "this entry cannot be made here" (the client's archive or the
# container's tree), not "the daemon failed".
_ENTRY_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.ELOOP,
    errno.ENAMETOOLONG,
    errno.EINVAL,
    errno.EPERM,
    errno.EXDEV,
    errno.EMLINK,
    errno.ENOTEMPTY,
}


class BlockingReader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class AsyncReader(Protocol):
    def read(self, n: int = -1, /) -> Coroutine[Any, Any, bytes]: ...


def check_path(path: str) -> None:
    """Refuse a container path that no lookup could take (a clear 400, never a 500)."""
    if "\0" in path:
        raise InvalidArgument("the path contains a NUL byte")
    n = len(os.fsencode(path))
    if n > MAX_PATH_BYTES:
        raise InvalidArgument(f"the path is {n} bytes long; a path is at most {MAX_PATH_BYTES} bytes")


def _lookup_error(
    e: OSError, path: str, what: str = "no such file or directory in the container"
) -> PodkitError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"{what}: {path}")
    if e.errno == errno.ELOOP:
        return InvalidArgument(
            f"{path}: too many levels of symbolic links, or a /proc magic link, in the container"
        )
    if e.errno == errno.ENAMETOOLONG:
        return InvalidArgument(f"{path}: a name in the path is longer than 255 bytes")
    return Internal(f"looking up {path} in the container failed: {e.strerror}")


# A running container's root is its process's (checked to be still the container's);
# a stopped one's, the mount cp made of its snapshot.
Root = Path | ProcessRoot


def open_root(root: Root) -> int:
    """A descriptor of the container's root (its process checked, or the mount), never
    the host's own root; NotFound when it is gone."""
    if isinstance(root, ProcessRoot):
        fd = open_process_root(root)
    else:
        try:
            fd = rootfs_fd.open_root(root)
        except OSError as e:  # the container's process went away meanwhile
            raise NotFound(f"the container's file system is not available: {e.strerror}") from None
    st, host = os.fstat(fd), os.stat("/")
    if (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino):
        # /proc/<pid>/root of a pid the container's process no longer holds, taken by a
        # host process: never copy from or into the host's root.
        os.close(fd)
        raise NotFound("the container's file system is not available: its process is gone")
    return fd


def _pin(root: Root, path: str, follow: bool = False) -> tuple[int, os.stat_result]:
    """An ``O_PATH`` descriptor of ``path`` in the container and its stat. Symlinks on the
    way are followed inside the root; the last one only with ``follow`` (``cp -L``; else
    the link itself is what is copied, as docker does)."""
    check_path(path)
    root_fd = open_root(root)
    try:
        fd = rootfs_fd.open_in_root(root_fd, path, os.O_PATH, follow=follow)
    except OSError as e:
        raise _lookup_error(e, path) from None
    finally:
        os.close(root_fd)
    return fd, os.fstat(fd)


def _info(path: str, fd: int, st: os.stat_result) -> dict[str, Any]:
    return {
        "name": os.path.basename(os.path.normpath(path)) or ".",
        "size": st.st_size,
        "mode": st.st_mode,
        "mtime": st.st_mtime,
        "is_dir": stat_mod.S_ISDIR(st.st_mode),
        "link_target": os.readlink("", dir_fd=fd) if stat_mod.S_ISLNK(st.st_mode) else "",
    }


async def stat_path(root: Root, path: str, follow: bool = False) -> dict[str, Any]:
    """What ``tar_path`` would report about ``path``, without the tar."""

    def run() -> dict[str, Any]:
        fd, st = _pin(root, path, follow)
        try:
            return _info(path, fd, st)
        finally:
            os.close(fd)

    return await asyncio.to_thread(run)


# -- copying out -------------------------------------------------------------------------


class _Cancelled(Exception):
    """The reader went away: the producer stops at its next write."""


class _QueueWriter:
    """A file-like sink that hands chunks to the event loop (tarfile writes from a thread)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue[bytes | BaseException | None]
    ) -> None:
        self.loop, self.q = loop, q
        self.buf = bytearray()
        self.stop = threading.Event()

    def write(self, b: bytes) -> int:
        if self.stop.is_set():
            raise _Cancelled()
        self.buf += b
        if len(self.buf) >= 1 << 16:
            self.flush()
        return len(b)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            self.put(data)

    def put(self, item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(self.q.put(item), self.loop).result()


async def tar_path(
    root: Root, path: str, follow: bool = False
) -> tuple[dict[str, Any], AsyncGenerator[bytes, None]]:
    """A tar of ``path`` (file or directory, named by its basename) and its stat; with
    ``follow`` a symlink named as ``path`` is copied as what it points to (inside the root).

    The tar is made while it is read; ``aclose()`` the generator to stop early (its
    descriptors are closed when that returns)."""
    fd, st = await asyncio.to_thread(_pin, root, path, follow)
    try:
        info = _info(path, fd, st)
    except BaseException:
        os.close(fd)
        raise
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)
    w = _QueueWriter(loop, q)

    def produce() -> None:
        end: BaseException | None = None
        try:
            with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
                TreeWriter(tf).write(fd, st, info["name"])
            w.flush()
        except BaseException as e:  # reported to the reader: a cut tar must not look whole
            end = e
        finally:
            # Every descriptor is closed before the reader hears the end: a stopped
            # container's root is unmounted right after.
            os.close(fd)
            w.put(end)

    async def gen() -> AsyncGenerator[bytes, None]:
        started.set()
        t = threading.Thread(target=produce, name=f"cp-out {path}", daemon=True)
        t.start()
        done = False
        try:
            while True:
                chunk = await q.get()
                if chunk is None:
                    done = True
                    break
                if isinstance(chunk, BaseException):
                    done = True
                    raise Internal(f"copying {path} out of the container failed: {chunk}")
                yield chunk
        finally:
            if not done:  # the reader left early: stop the producer and wait for its end
                w.stop.set()
                while not isinstance(item := await q.get(), BaseException) and item is not None:
                    pass

    started = threading.Event()
    chunks = gen()

    def never_read() -> None:
        if not started.is_set():
            os.close(fd)

    weakref.finalize(chunks, never_read)
    return info, chunks


class TreeWriter:
    """Entries under a pinned inode in tar order (parents first, names sorted), depth
    first without recursion: a container can make trees deeper than Python's
    recursion limit. ``cp`` writes one path's tree, ``export`` a whole root.

    ``descend(arcname, st)``, when given, says whether a directory's entries are
    written (export leaves other file systems' mount points empty); ``xattrs`` adds
    each entry's extended attributes as PAX records (overlayfs's own left out)."""

    def __init__(
        self,
        tf: tarfile.TarFile,
        descend: Callable[[str, os.stat_result], bool] | None = None,
        xattrs: bool = False,
    ) -> None:
        self.tf, self.descend, self.xattrs = tf, descend, xattrs
        self.seen: dict[tuple[int, int], str] = {}  # inode -> first name, for hard links

    def write(self, top: int, st: os.stat_result, name: str) -> None:
        """``top`` as ``name``, and everything below it as ``name/...``."""
        self._walk(self.entry(top, st, name))

    def write_below(self, top: int) -> None:
        """Everything below directory ``top``, named from there (``top`` itself is no
        entry: a whole root, as ``export`` writes it)."""
        self._walk(self._listed(top, ""))

    def _walk(self, sub: tuple[int, str, list[str]] | None) -> None:
        stack: list[tuple[int, str, list[str]]] = []  # (directory fd, its name, children left)
        if sub is not None:
            stack.append(sub)
        try:
            while stack:
                dfd, arc, names = stack[-1]
                if not names:
                    os.close(dfd)
                    stack.pop()
                    continue
                child = names.pop()
                try:
                    fd = os.open(child, _PIN_FLAGS, dir_fd=dfd)
                except FileNotFoundError:
                    continue  # removed since the directory was listed
                try:
                    sub = self.entry(fd, os.fstat(fd), f"{arc}/{child}" if arc else child)
                finally:
                    os.close(fd)
                if sub is not None:
                    stack.append(sub)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    @staticmethod
    def _listed(fd: int, arcname: str) -> tuple[int, str, list[str]]:
        dfd = rootfs_fd.reopen(fd, _DIR_FLAGS)
        try:
            return dfd, arcname, sorted(os.listdir(dfd), reverse=True)
        except BaseException:
            os.close(dfd)
            raise

    def entry(self, fd: int, st: os.stat_result, arcname: str) -> tuple[int, str, list[str]] | None:
        """Add one pinned entry; a directory comes back opened, with its children to do."""
        mode = st.st_mode
        ti = tarfile.TarInfo(arcname)
        ti.mode = stat_mod.S_IMODE(mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        # Whole seconds, as docker writes them: no PAX record per file for the fraction.
        ti.mtime = int(st.st_mtime)
        if self.xattrs:
            ti.pax_headers = _xattrs(fd)
        if not stat_mod.S_ISDIR(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.seen[key]
                self.tf.addfile(ti)
                return None
            self.seen[key] = arcname
        if stat_mod.S_ISREG(mode):
            ti.size = st.st_size
            with os.fdopen(rootfs_fd.reopen(fd, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY), "rb") as f:
                self.tf.addfile(ti, f)
        elif stat_mod.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            self.tf.addfile(ti)
            if self.descend is not None and not self.descend(arcname, st):
                return None
            return self._listed(fd, arcname)
        elif stat_mod.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
            self.tf.addfile(ti)
        elif stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat_mod.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tf.addfile(ti)
        elif stat_mod.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
            self.tf.addfile(ti)
        # sockets have no tar form (tar and docker skip them too)
        return None


def _xattrs(fd: int) -> dict[str, str]:
    """The PAX records of an entry's extended attributes, read through the magic link
    of its ``O_PATH`` descriptor (which has no ``f*xattr`` calls of its own): that
    inode's, a symlink's own included, and no other's."""
    where = f"/proc/self/fd/{fd}"
    try:
        names = os.listxattr(where)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for n in sorted(names):
        if n.startswith(OVERLAY_XATTR):
            continue
        try:
            out["SCHILY.xattr." + n] = os.getxattr(where, n).decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return out


# -- copying in --------------------------------------------------------------------------


class _StreamReader:
    """Blocking file-like reader over an async stream (used from a thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: AsyncReader) -> None:
        self.loop, self.stream = loop, stream
        self.buf = b""

    def read(self, n: int = -1, /) -> bytes:
        while n < 0 or len(self.buf) < n:
            chunk = asyncio.run_coroutine_threadsafe(self.stream.read(1 << 16), self.loop).result()
            if not chunk:
                break
            self.buf += chunk
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


async def untar_into(
    root: Root, path: str, stream: BlockingReader | AsyncReader, owner: tuple[int, int] | None = None
) -> None:
    """Extract the tar read from ``stream`` into directory ``path`` of the container; each
    entry owned as the tar says, or by ``owner`` (uid, gid) when given (``cp`` without -a)."""

    def open_dest() -> int:
        check_path(path)
        root_fd = open_root(root)
        try:
            return rootfs_fd.open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except OSError as e:
            raise _lookup_error(e, path, "destination is not a directory in the container") from None
        finally:
            os.close(root_fd)

    dest = await asyncio.to_thread(open_dest)
    try:
        loop = asyncio.get_running_loop()
        reader = (
            _StreamReader(loop, cast(AsyncReader, stream))
            if asyncio.iscoroutinefunction(stream.read)
            else cast(BlockingReader, stream)
        )
        await asyncio.to_thread(_extract, reader, dest, owner)
    finally:
        os.close(dest)


def _extract(reader: BlockingReader, dest: int, owner: tuple[int, int] | None = None) -> None:
    try:
        tf = tarfile.open(fileobj=reader, mode="r|*")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as e:
        raise InvalidArgument(f"not a tar archive: {e}") from None
    x = _Extractor(tf, dest, owner)
    try:
        with tf:
            for m in tf:
                x.member(m)
            x.finish()
    except tarfile.TarError as e:
        raise InvalidArgument(f"the archive is damaged: {e}") from None
    finally:
        x.close()


class _Extractor:
    """Writes members below the destination descriptor (see the module docstring)."""

    def __init__(self, tf: tarfile.TarFile, dest: int, owner: tuple[int, int] | None = None) -> None:
        self.tf, self.dest, self.owner = tf, dest, owner
        self.parent: tuple[str, int] | None = None  # the last parent directory, kept open
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []  # attributes set at the end

    def close(self) -> None:
        if self.parent is not None:
            os.close(self.parent[1])
            self.parent = None

    def member(self, m: tarfile.TarInfo) -> None:
        name = os.path.normpath(m.name)
        if name.startswith("/") or name == ".." or name.startswith("../"):
            raise UnsafeContent(f"archive entry {m.name!r} points outside the destination")
        if name == ".":
            return
        if self.owner is not None:
            m.uid, m.gid = self.owner  # every chown below reads these
        try:
            self._member(m, name)
        except PodkitError:
            raise
        except ValueError as e:  # an embedded NUL byte
            raise InvalidArgument(f"archive entry {m.name!r} cannot be extracted: {e}") from None
        except OSError as e:
            if e.errno in _ENTRY_ERRNOS:
                raise InvalidArgument(f"archive entry {m.name!r} cannot be extracted: {e.strerror}") from None
            raise Internal(f"extracting {m.name!r} failed: {e.strerror}") from None

    def _parent_fd(self, head: str) -> int:
        if not head:
            return self.dest
        if self.parent is not None and self.parent[0] == head:
            return self.parent[1]
        fd = rootfs_fd.makedirs_in_root(self.dest, head)
        self.close()
        self.parent = (head, fd)
        return fd

    def _member(self, m: tarfile.TarInfo, name: str) -> None:
        head, base = os.path.split(name)
        pfd = self._parent_fd(head)
        if m.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                if not stat_mod.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                    os.unlink(base, dir_fd=pfd)
                    os.mkdir(base, 0o700, dir_fd=pfd)
            self.dirs.append((name, m))
        elif m.issym():
            self._create(m, pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            self._hardlink(m, pfd, base)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._special(m, pfd, base)
        else:  # regular files, and (as tar does) types it does not know
            self._file(m, pfd, base)

    def _create(self, m: tarfile.TarInfo, pfd: int, base: str, make: Callable[[], object]) -> None:
        """``make`` the entry (which fails rather than follows when something is at
        ``base``); what is there, unless a directory, is unlinked and ``make`` tried
        again (the container may put something back meanwhile)."""
        for _ in range(3):
            try:
                make()
                return
            except FileExistsError:
                pass
            try:
                os.unlink(base, dir_fd=pfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise InvalidArgument(
                    f"archive entry {m.name!r} would replace a directory with a non-directory"
                ) from None
        raise InvalidArgument(f"archive entry {m.name!r}: the path keeps being recreated in the container")

    def _file(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        fds: list[int] = []
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
        self._create(m, pfd, base, lambda: fds.append(os.open(base, flags, 0o600, dir_fd=pfd)))
        fd = fds[0]
        try:
            src = self.tf.extractfile(m)
            while src is not None and (chunk := src.read(1 << 20)):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            self._attrs(fd, m)
        finally:
            os.close(fd)

    def _attrs(self, fd: int, m: tarfile.TarInfo) -> None:
        # Owner first: chown clears set-id bits the mode may then set again.
        os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        os.utime(fd, (m.mtime, m.mtime))

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        link = os.path.normpath(m.linkname)
        if link.startswith("/") or link == ".." or link.startswith("../"):
            raise UnsafeContent(f"hard link {m.name!r} points outside the destination")
        lhead, lbase = os.path.split(link)
        try:
            lpfd = rootfs_fd.open_in_root(self.dest, lhead, os.O_PATH | os.O_DIRECTORY) if lhead else -1
        except OSError as e:
            raise InvalidArgument(
                f"hard link {m.name!r} names {m.linkname!r}, which is not in the destination ({e.strerror})"
            ) from None
        src_dir = lpfd if lhead else self.dest
        try:
            try:
                st = os.stat(lbase, dir_fd=src_dir, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidArgument(
                    f"hard link {m.name!r} names {m.linkname!r}, which is not in the destination"
                ) from None
            if stat_mod.S_ISLNK(st.st_mode):
                raise UnsafeContent(
                    f"hard link {m.name!r} names {m.linkname!r}, a symlink: "
                    "hard links to symlinks are not extracted"
                )
            if stat_mod.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"hard link {m.name!r} names {m.linkname!r}, a directory")
            # linkat without AT_SYMLINK_FOLLOW: had the container swapped in a symlink
            # since the check, the link is to that symlink itself, never to its target.
            self._create(
                m,
                pfd,
                base,
                lambda: os.link(lbase, base, src_dir_fd=src_dir, dst_dir_fd=pfd, follow_symlinks=False),
            )
        finally:
            if lhead:
                os.close(lpfd)

    def _special(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        if m.isfifo():
            self._create(m, pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
            kind = stat_mod.S_IFIFO
        else:
            kind = stat_mod.S_IFCHR if m.ischr() else stat_mod.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
            self._create(m, pfd, base, lambda: os.mknod(base, 0o600 | kind, dev, dir_fd=pfd))
        # Owner, mode and times through a descriptor pinning the node just made: a
        # chmod by name would follow a symlink put there meanwhile.
        fd = os.open(base, _PIN_FLAGS, dir_fd=pfd)
        try:
            if stat_mod.S_IFMT(os.fstat(fd).st_mode) != kind:
                return  # replaced by the container meanwhile: not ours to change
            proc = f"/proc/self/fd/{fd}"
            os.chown(proc, m.uid, m.gid)
            os.chmod(proc, m.mode & 0o7777)
            os.utime(proc, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directories' owner, mode and times, deepest first (writing their entries
        changed their times)."""
        for name, m in sorted(self.dirs, key=lambda d: d[0], reverse=True):
            try:
                fd = rootfs_fd.open_in_root(self.dest, name, _DIR_FLAGS, follow=False)
            except OSError as e:
                log.warning("cp: not setting attributes of %s: %s", name, e.strerror)
                continue
            try:
                self._attrs(fd, m)
            finally:
                os.close(fd)
