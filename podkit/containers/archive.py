"""``podkit cp``: tar streams out of and into a container's file system.

Paths are resolved inside the container's root with every symlink kept inside it,
and an archive being extracted may not place anything outside the destination
(no absolute names, no ``..``, no writing through a symlink it created).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat as stat_mod
import tarfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from podkit.errors import Internal, InvalidArgument, NotFound, UnsafeContent


def _join(root: Path, path: str) -> Path:
    from podkit.containers.rootfs import secure_join

    return secure_join(root, path)


class _QueueWriter:
    """A file-like sink that hands chunks to the event loop (tarfile writes from a thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue[bytes | None]) -> None:
        self.loop, self.q = loop, q
        self.buf = bytearray()

    def write(self, b: bytes) -> int:
        self.buf += b
        if len(self.buf) >= 1 << 16:
            self.flush()
        return len(b)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            asyncio.run_coroutine_threadsafe(self.q.put(data), self.loop).result()


async def tar_path(root: Path, path: str) -> tuple[dict[str, Any], AsyncIterator[bytes]]:
    """A tar of ``path`` (file or directory, named by its basename) and its stat."""
    src = _join(root, path)
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        raise NotFound(f"no such file or directory in the container: {path}") from None
    name = os.path.basename(os.path.normpath(path)) or "."
    info = {
        "name": name,
        "size": st.st_size,
        "mode": st.st_mode,
        "mtime": st.st_mtime,
        "is_dir": stat_mod.S_ISDIR(st.st_mode),
        "link_target": os.readlink(src) if stat_mod.S_ISLNK(st.st_mode) else "",
    }
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)

    def produce() -> None:
        w = _QueueWriter(loop, q)
        end: BaseException | None = None
        try:
            with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[arg-type]
                for full, arcname in _walk(src, name):
                    tf.add(full, arcname=arcname, recursive=False)
            w.flush()
        except BaseException as e:  # reported to the reader: a cut tar must not look whole
            end = e
        finally:
            asyncio.run_coroutine_threadsafe(q.put(end), loop).result()

    t = threading.Thread(target=produce, daemon=True)
    t.start()

    async def gen() -> AsyncIterator[bytes]:
        while True:
            chunk = await q.get()
            if chunk is None:
                break
            if isinstance(chunk, BaseException):
                raise Internal(f"copying {path} out of the container failed: {chunk}")
            yield chunk

    return info, gen()


def _walk(src: Path, name: str) -> Iterator[tuple[str, str]]:
    """Entries under src in tar order (parents first, names sorted), without recursion:
    a container can make trees deeper than Python's recursion limit."""
    stack = [(str(src), name)]
    while stack:
        full, arcname = stack.pop()
        yield full, arcname
        if os.path.isdir(full) and not os.path.islink(full):
            for child in sorted(os.listdir(full), reverse=True):
                stack.append((os.path.join(full, child), f"{arcname}/{child}"))


class _StreamReader:
    """Blocking file-like reader over an aiohttp StreamReader (used from a thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: Any) -> None:
        self.loop, self.stream = loop, stream
        self.buf = b""

    def read(self, n: int = -1) -> bytes:
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


async def untar_into(root: Path, path: str, stream: Any) -> None:
    dest = _join(root, path)
    if not dest.is_dir():
        raise NotFound(f"destination {path} is not a directory in the container")
    loop = asyncio.get_running_loop()
    reader = (
        stream
        if hasattr(stream, "read") and not asyncio.iscoroutinefunction(stream.read)
        else _StreamReader(loop, stream)
    )
    await asyncio.to_thread(_extract, reader, dest)


def _extract(reader: Any, dest: Path) -> None:
    try:
        tf = tarfile.open(fileobj=reader, mode="r|*")  # noqa: SIM115 - closed below
    except tarfile.TarError as e:
        raise InvalidArgument(f"not a tar archive: {e}") from None
    real_dest = os.path.realpath(dest)
    with tf:
        for m in tf:
            name = os.path.normpath(m.name)
            if name.startswith("/") or name == ".." or name.startswith("../"):
                raise UnsafeContent(f"archive entry {m.name!r} points outside the destination")
            if name == ".":
                continue
            target = _join(dest, name)
            parent = os.path.realpath(target.parent)
            if parent != real_dest and not parent.startswith(real_dest + "/"):
                raise UnsafeContent(f"archive entry {m.name!r} would be written outside the destination")
            if m.islnk():
                link = os.path.normpath(m.linkname)
                if link.startswith("/") or link.startswith(".."):
                    raise UnsafeContent(f"hard link {m.name!r} points outside the destination")
                m.linkname = str(_join(dest, link))
            m.name = os.path.relpath(target, dest)
            with contextlib.suppress(FileNotFoundError):
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()
            tf.extract(m, str(dest), set_attrs=True)
