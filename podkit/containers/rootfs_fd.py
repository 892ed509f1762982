"""Opening paths inside a directory as if it were ``/``, through file descriptors only.

A container's processes can change its file system while podkit works in it: a path
resolved first and opened again by name later can meet a directory swapped for a
symlink to ``/`` in between, and the second lookup then runs from the *host's* root
(CVE-2018-15664). Here every lookup starts from a descriptor of the root and stays
below it, and callers keep working relative to the descriptors they get back
(``dir_fd=``, ``follow_symlinks=False``, ``f*`` calls), so no later step names a path
from the host's root again.

- :func:`open_in_root` asks the kernel: ``openat2(RESOLVE_IN_ROOT |
  RESOLVE_NO_MAGICLINKS)`` resolves absolute symlinks and ``..`` against the root
  descriptor and refuses ``/proc`` magic links (``/proc/<pid>/root``,
  ``/proc/<pid>/fd/<n>``), atomically with respect to renames.
- Where ``openat2`` is missing (ENOSYS: kernels before 5.6, some seccomp filters) the
  same rules are applied by hand, one component at a time: each is opened with
  ``O_PATH | O_NOFOLLOW`` relative to the descriptor of its parent, symlinks are read
  with ``readlinkat`` and their targets resolved by the same walk (absolute ones from
  the root), ``..`` goes back to a descriptor kept on a stack (never a lookup of
  ``..``, which a rename could point elsewhere) and stops at the root, and any
  symlink on a procfs is refused (magic links live only there).
- :func:`makedirs_in_root` is that walk with missing directories created, a missing
  symlink target included (as ``tar`` does when it extracts through a dangling link).

Errors are ``OSError`` with the errno the kernel would give (ENOENT, ENOTDIR, ELOOP,
ENAMETOOLONG...); callers turn them into podkit errors.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import struct
from pathlib import Path

# openat2(2) resolve flags (linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# As the kernel's own limit on symlinks followed in one lookup.
MAX_SYMLINKS = 40
# openat2 answers EAGAIN when a rename raced a ".." step; it is then retried, and
# after this many tries the lookup is done by the walk instead.
_EAGAIN_TRIES = 32
_PROC_SUPER_MAGIC = 0x9FA0

# openat2 is syscall 437 on every architecture that has the unified syscall table
# (x86_64, aarch64, riscv64, ...); 32-bit x86 has it at the same number too.
_SYSCALL_NUMBERS = {"x86_64": 437, "aarch64": 437, "arm64": 437, "riscv64": 437, "i686": 437}
_SYS_OPENAT2 = _SYSCALL_NUMBERS.get(platform.machine())

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
_libc.fstatfs.restype = ctypes.c_int


class _State:
    """Whether openat2 answered ENOSYS once (then it is not tried again)."""

    openat2_missing = _SYS_OPENAT2 is None


def _openat2_syscall(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    """The raw syscall: a new descriptor, or OSError with the kernel's errno."""
    if _SYS_OPENAT2 is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    how = ctypes.create_string_buffer(struct.pack("=QQQ", flags, mode, resolve), 24)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(path),
        how,
        ctypes.c_size_t(24),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    return int(fd)


def openat2_available() -> bool:
    """False once openat2 was found missing (the walk is used instead)."""
    return not _State.openat2_missing


def open_root(path: str | Path) -> int:
    """An ``O_PATH`` descriptor of a directory to use as the root of later lookups.

    ``path`` is trusted (a ``/proc/<pid>/root`` or a mount podkit made): it is the
    only name ever looked up from the host's root.
    """
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *, follow: bool = True) -> int:
    """Open ``path`` as if ``root_fd`` were ``/``; a new descriptor (close-on-exec).

    ``flags`` are open(2) flags (no ``O_CREAT``). With ``follow=False`` a symlink as
    the last component is not followed: with ``O_PATH`` the descriptor is of the link
    itself, otherwise ELOOP, as ``O_NOFOLLOW`` does.
    """
    if flags & os.O_CREAT:
        raise ValueError("open_in_root does not create files: open the parent, then openat")
    flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    if not _State.openat2_missing:
        for _ in range(_EAGAIN_TRIES):
            try:
                return _openat2_syscall(
                    root_fd, raw or b".", flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
                )
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                if e.errno != errno.ENOSYS:
                    raise
                _State.openat2_missing = True
                break
    return _walk(root_fd, path, flags, follow, None)


def makedirs_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """An ``O_PATH`` descriptor of directory ``path`` under ``root_fd``, made with its
    missing parents (``mode``, less the umask) if need be."""
    if not _State.openat2_missing:
        try:
            return open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            pass
    return _walk(root_fd, path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, True, mode)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _is_procfs(fd: int) -> bool:
    # struct statfs begins with f_type (a long on every 64-bit Linux ABI); the buffer
    # is larger than the whole struct on all of them.
    buf = ctypes.create_string_buffer(256)
    if _libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ctypes.c_long.from_buffer(buf).value) == _PROC_SUPER_MAGIC


def reopen(fd: int, flags: int) -> int:
    """Open the very inode an ``O_PATH`` descriptor holds, with real access flags.

    Through the descriptor's ``/proc/self/fd`` magic link, which names that inode and
    nothing else: no lookup of a name happens that the container could redirect.
    """
    if flags & os.O_NOFOLLOW:
        # The walk already refused a final symlink; O_NOFOLLOW here would refuse the
        # magic link itself.
        flags &= ~os.O_NOFOLLOW
    return os.open(f"/proc/self/fd/{fd}", flags)


def _walk(root_fd: int, path: str, flags: int, follow: bool, create_mode: int | None) -> int:
    """The by-hand resolution described in the module docstring."""
    parts = _components(path)
    stack: list[int] = []  # descriptors below the root, parent of the next step last
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if stack:
                    os.close(stack.pop())
                continue
            cur = stack[-1] if stack else root_fd
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                try:
                    os.mkdir(part, create_mode, dir_fd=cur)
                except FileExistsError:
                    pass  # made meanwhile: the next round opens whatever is there
                parts.insert(0, part)
                continue
            st = os.fstat(fd)
            last = not parts
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                try:
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    if _is_procfs(fd):
                        # A magic link (or /proc/self): what it names is not a path
                        # inside this root.
                        raise OSError(errno.ELOOP, "a /proc link is not followed", path)
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if not target:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                parts[:0] = _components(target)
                continue
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                stack.append(fd)
                continue
            return _finish(fd, st, flags)
        # Nothing left to look up: the path names the root itself (or a directory
        # on the stack, after "..").
        if stack:
            fd = stack.pop()
            return _finish(fd, os.fstat(fd), flags)
        return _finish(os.dup(root_fd), os.fstat(root_fd), flags)
    finally:
        for fd in stack:
            os.close(fd)


def _finish(fd: int, st: os.stat_result, flags: int) -> int:
    """The walk's result, as the caller's flags ask (consumes ``fd``)."""
    try:
        if flags & os.O_DIRECTORY and not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if flags & os.O_PATH:
            fd, out = -1, fd
            return out
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        return reopen(fd, flags)
    finally:
        if fd >= 0:
            os.close(fd)
