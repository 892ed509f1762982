"""Network namespaces pinned by a bind mount, so they outlive any process.

A pod's (or a standalone container's) network namespace is made before any of its
processes exist, so that CNI can wire it first and runc can then join it by path.
The namespace lives as long as something holds it: here a bind mount of
``/proc/<tid>/ns/net`` onto a file under ``<state>/netns/``, as ``ip netns`` and
containerd do. The directory itself is made a shared mount point so that an
unmount of a pin propagates to mount namespaces cloned after it was made (their
copies would otherwise keep the network namespace alive).
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from podkit.errors import AlreadyExists, Internal, InvalidArgument, NotFound

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
NSFS_MAGIC = 0x6E736673

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(src: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None, flags, None),
        f"mount {src} on {target}",
    )


def _umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> set[str]:
    """Mount points of this mount namespace."""
    out: set[str] = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 4:
                out.add(_unescape(parts[4]))
    return out


def _is_shared(path: str) -> bool:
    """Whether the mount holding `path` propagates (has a `shared:N` tag)."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            mp = _unescape(parts[4])
            inside = path == mp or path.startswith(mp.rstrip("/") + "/")
            if inside and len(mp) >= len(best):
                tags = parts[6 : parts.index("-")]
                best, shared = mp, any(t.startswith("shared:") for t in tags)
    return shared


def is_netns(path: str | Path) -> bool:
    """True when `path` is a pinned network namespace (an nsfs bind mount)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        import fcntl

        # NS_GET_NSTYPE answers only on nsfs files: a plain file gives ENOTTY.
        ns_get_nstype = 0xB703
        return fcntl.ioctl(fd, ns_get_nstype) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


def _unshare_and_pin(target: str) -> None:
    """In a fresh thread: enter a new netns, bind its handle onto `target`, go back.

    unshare(CLONE_NEWNET) moves only the calling thread; that thread is ours alone
    (not a pool thread), and it returns to the original namespace before it ends
    anyway so nothing of the Python runtime is left inside.
    """
    err: list[BaseException] = []

    def run() -> None:
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                _mount("/proc/thread-self/ns/net", target, None, MS_BIND)
            finally:
                _check(_libc.setns(orig, CLONE_NEWNET), "setns back to the host netns")
        except BaseException as e:  # reported to the caller's thread
            err.append(e)
        finally:
            os.close(orig)

    t = threading.Thread(target=run, name="podkit-netns")
    t.start()
    t.join()
    if err:
        raise err[0]


class NetnsPins:
    """The pin directory ``<state>/netns`` and the namespaces pinned in it."""

    def __init__(self, state: str | Path) -> None:
        self.dir = Path(state) / "netns"
        self._lock = threading.Lock()

    def _ensure_dir(self) -> None:
        """Make sure pins and their unmounts propagate to mount namespaces cloned later.

        On a host whose mounts are shared (systemd's default) the directory already
        sits in a shared mount and nothing needs doing. Otherwise it is bind-mounted
        onto itself and made shared, as ``ip netns`` does with /run/netns.
        """
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        d = str(self.dir)
        if _is_shared(d):
            return
        if d not in mount_points():
            _mount(d, d, None, MS_BIND | MS_REC)
        _mount("none", d, None, MS_SHARED | MS_REC)

    def path(self, name: str) -> Path:
        if not _NAME_RE.fullmatch(name):
            raise InvalidArgument(f"invalid network namespace name {name!r}")
        return self.dir / name

    def create(self, name: str) -> str:
        """Make a new network namespace pinned at ``<state>/netns/<name>``; return its path."""
        p = self.path(name)
        with self._lock:
            self._ensure_dir()
            self._pin_locked(name, p, _unshare_and_pin, "create", "made")
        log.debug("created netns %s", p)
        return str(p)

    def bind(self, name: str, source: str | Path) -> str:
        """Pin the namespace pinned at ``source`` under ``name`` too (a pod's pin of a
        pre-warmed sandbox's netns): one namespace, two pins, each removed on its own."""
        p = self.path(name)
        with self._lock:
            self._ensure_dir()
            if not is_netns(source):
                raise NotFound(f"{source} is not a network namespace")
            self._pin_locked(name, p, lambda t: _mount(str(source), t, None, MS_BIND), "pin", "pinned")
        log.debug("pinned netns %s at %s", source, p)
        return str(p)

    def _pin_locked(self, name: str, p: Path, pin: Callable[[str], None], verb: str, done: str) -> None:
        """Make the pin file `p` (exclusively) and `pin` a namespace onto it; the file
        goes again when that fails. `verb`/`done` word the error and the warning."""
        if p.exists():
            if is_netns(p):
                raise AlreadyExists(f"network namespace {name} already exists")
            # A file without a mount: left by a crash between these steps.
            self._drop(p)
        fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            pin(str(p))
        except OSError as e:
            try:
                p.unlink()
            except OSError as ue:
                log.warning("could not remove the pin %s of a namespace not %s: %s", p, done, ue)
            raise Internal(f"cannot {verb} network namespace {name}: {e.strerror or e}") from None

    def remove(self, name: str, missing_ok: bool = True) -> bool:
        """Unmount and unlink a pin; the namespace ends when nothing else holds it."""
        p = self.path(name)
        with self._lock:
            if not p.exists() and not p.is_symlink():
                if missing_ok:
                    return False
                raise NotFound(f"network namespace {name} not found")
            self._drop(p)
            # The directory's own mount lives only while it holds pins, so a daemon
            # with no pods leaves no mount behind even if it is killed.
            self._release_dir_locked()
        log.debug("removed netns %s", p)
        return True

    def _drop(self, p: Path) -> None:
        # A pin may have been mounted more than once (a racing create): unmount all.
        for _ in range(8):
            try:
                _umount(str(p))
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ENOENT):
                    break
                raise Internal(f"cannot unmount network namespace {p}: {e.strerror}") from None
        with contextlib.suppress(FileNotFoundError):
            p.unlink()

    def list(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(e.name for e in self.dir.iterdir() if not e.name.startswith("."))

    def exists(self, name: str) -> bool:
        return is_netns(self.path(name))

    def sweep(self) -> builtins.list[str]:
        """Remove pin files that hold no namespace (a crash between create and mount)."""
        gone = []
        for name in self.list():
            if not is_netns(self.dir / name):
                try:
                    self._drop(self.dir / name)
                except (OSError, Internal) as e:
                    log.warning("could not remove the stale netns pin %s: %s", self.dir / name, e)
                    continue
                gone.append(name)
        with self._lock:
            self._release_dir_locked()
        return gone

    def release_dir(self) -> None:
        """Unmount the pin directory when it holds no pins (daemon shutdown)."""
        with self._lock:
            self._release_dir_locked()

    def _release_dir_locked(self) -> None:
        if self.list():
            return
        d = str(self.dir)
        if d in mount_points():
            try:
                _umount(d)
            except OSError as e:
                log.warning("could not unmount the netns pin directory %s: %s", d, e)
