"""Mount specs and the helpers that apply them (mount(2) through libc, no fork on the common path)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import Internal, InvalidArgument

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

# The kernel copies mount data into one page; longer overlay option strings fail.
_PAGE = os.sysconf("SC_PAGESIZE")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


@dataclass
class Mount:
    """One mount, as containerd describes it: a type, a source and fs options."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def to_oci(self, destination: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if destination is not None:
            d["destination"] = destination
        d.update({"type": self.type, "source": self.source, "options": list(self.options)})
        return d

    def to_dict(self) -> dict[str, Any]:
        return self.to_oci()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mount:
        return cls(d["type"], d["source"], list(d.get("options") or []))

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def sys_mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(
            err,
            f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}"
            + (f" (options {data})" if data else ""),
        )


def sys_umount(target: str, flags: int = 0) -> None:
    if _libc.umount2(target.encode(), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


# Options that are mount(2) flags rather than file system data.
_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": 0x2,
    "nodev": 0x4,
    "noexec": 0x8,
    "rw": 0,
    "suid": 0,
    "dev": 0,
    "exec": 0,
    "bind": 0,
    "rbind": 0,
}


def _split(options: list[str]) -> tuple[int, str]:
    flags = 0
    data = []
    for o in options:
        if o in _FLAGS:
            flags |= _FLAGS[o]
        else:
            data.append(o)
    return flags, ",".join(data)


def _mount_one(m: Mount, target: str) -> None:
    flags, data = _split(m.options)
    if m.type == "bind" or "bind" in m.options or "rbind" in m.options:
        sys_mount(m.source, target, None, MS_BIND | (MS_REC if "rbind" in m.options else 0), None)
        if flags:
            # A bind mount ignores ro/nosuid/... on creation; they take a remount.
            sys_mount("", target, None, MS_BIND | MS_REMOUNT | flags, None)
        return
    if m.type == "overlay" and len(data) >= _PAGE - 1:
        _mount_overlay_relative(m, target, flags)
        return
    sys_mount(m.source, target, m.type, flags, data or None)


def _mount_overlay_relative(m: Mount, target: str, flags: int) -> None:
    """Mount an overlay whose option string is longer than a page.

    The layer directories share one parent, so relative paths from there are short.
    The kernel resolves them against the caller's cwd; changing the daemon's cwd
    would race with its other threads, so a child `mount` does it from that cwd.
    """
    opts = [o for o in m.options if o not in _FLAGS]
    dirs = []
    for o in opts:
        k, sep, v = o.partition("=")
        if sep and k in ("lowerdir", "upperdir", "workdir"):
            dirs.extend(v.split(":"))
    base = os.path.commonpath(dirs)
    short = []
    for o in opts:
        k, sep, v = o.partition("=")
        if sep and k in ("lowerdir", "upperdir", "workdir"):
            v = ":".join(os.path.relpath(p, base) for p in v.split(":"))
        short.append(f"{k}{sep}{v}")
    data = ",".join(short)
    if len(data) >= _PAGE - 1:
        raise InvalidArgument(f"too many layers to mount on {target}: overlay options exceed a page")
    named = [name for name, bit in _FLAGS.items() if bit and flags & bit]
    cmd = ["mount", "-t", "overlay", "overlay", "-o", ",".join([data, *named]), target]
    r = subprocess.run(cmd, cwd=base, capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"mount overlay on {target}: {r.stderr.strip()}")


def mount_all(mounts: list[Mount], target: str | os.PathLike[str]) -> None:
    """Mount each spec on target in order; on failure undo what was mounted."""
    target = os.fspath(target)
    done = 0
    try:
        for m in mounts:
            _mount_one(m, target)
            done += 1
    except OSError as e:
        for _ in range(done):
            try:
                sys_umount(target, MNT_DETACH)
            except OSError:
                break
        raise Internal(str(e)) from None


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


# statx(2): STATX_ATTR_MOUNT_ROOT (Linux 5.8) says whether a path is the root of a
# mount, bind mounts of the same device included — one syscall instead of reading
# /proc/self/mountinfo, which costs ~2 ms a call with a few hundred mounts (a container
# start and release ask up to five times).
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_ATTR_MOUNT_ROOT = 0x2000
_STATX_SIZE = 256
_ATTRIBUTES = 8  # offsets in struct statx: stx_attributes, stx_attributes_mask
_ATTRIBUTES_MASK = 56
_statx = getattr(_libc, "statx", None)


def _mount_root(path: str, follow: bool = False) -> bool | None:
    """From statx: whether ``path`` is a mount's root; None when it cannot tell.
    ``follow``: a symlink as the last component is followed (as all before it are)."""
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    flags = 0 if follow else _AT_SYMLINK_NOFOLLOW
    if _statx(-100, os.fsencode(path), flags, 0, buf) != 0:  # AT_FDCWD
        # nothing can be mounted on a path that is not there
        return False if ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR) else None
    mask = int.from_bytes(buf.raw[_ATTRIBUTES_MASK : _ATTRIBUTES_MASK + 8], "little")
    if not mask & _STATX_ATTR_MOUNT_ROOT:
        return None  # this kernel or file system does not report it
    attrs = int.from_bytes(buf.raw[_ATTRIBUTES : _ATTRIBUTES + 8], "little")
    return bool(attrs & _STATX_ATTR_MOUNT_ROOT)


def is_mountpoint(target: str | os.PathLike[str]) -> bool:
    """True when something is mounted on target (bind mounts of the same device included,
    which os.path.ismount misses)."""
    # statx following every symlink asks about the realpath, without realpath's lstat
    # of each component (a run --rm asks up to ten times)
    known = _mount_root(os.fspath(target), follow=True)
    if known is not None:
        return known
    path = os.path.realpath(os.fspath(target))
    try:
        with open("/proc/self/mountinfo") as f:
            return any(_unescape(line.split()[4]) == path for line in f)
    except OSError:
        return os.path.ismount(path)


def unmount(target: str | os.PathLike[str], detach: bool = True) -> None:
    """Unmount everything stacked on target (a no-op when nothing is)."""
    target = os.fspath(target)
    for _ in range(64):
        if not is_mountpoint(target):
            return
        try:
            sys_umount(target, MNT_DETACH if detach else 0)
        except OSError as e:
            if e.errno in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
                return
            raise Internal(f"cannot unmount {target}: {e}") from None
