"""Kernel pieces of a pod sandbox that podkit makes itself: pinned ipc/uts namespaces
and the pod's shared /dev/shm.

The network namespace is pinned by the network layer; ipc and uts are pinned here
the same way (a bind mount of ``/proc/thread-self/ns/<type>`` onto a file) so that
they exist before the infra process and outlive it: the infra and every container
join them by path, and a restart of the infra does not split the pod. The uts
namespace gets the pod's hostname when it is made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MNT_DETACH = 2
NS_GET_NSTYPE = 0xB703

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
CLONE_NEWPID = 0x20000000
_FLAGS = {"ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "pid": CLONE_NEWPID}


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def mount(src: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            src.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {src} on {target}",
    )


def unmount_all(target: str | Path) -> None:
    """Detach every mount stacked on ``target`` (a racing double mount included)."""
    for _ in range(8):
        if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
            e = ctypes.get_errno()
            if e in (errno.EINVAL, errno.ENOENT):
                return
            raise OSError(e, f"umount {target}: {os.strerror(e)}")


def ns_type(path: str | Path) -> int:
    """The CLONE_NEW* type of a namespace file, 0 when it is not one (not pinned)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        import fcntl

        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return 0
    finally:
        os.close(fd)


def is_pinned(path: str | Path, kind: str) -> bool:
    return ns_type(path) == _FLAGS[kind]


def pin_namespaces(targets: dict[str, Path], hostname: str | None) -> None:
    """Make new namespaces of the given kinds ("ipc", "uts") and pin each on its file.

    Runs in a thread of its own: unshare() moves only the calling thread, which goes
    back to the daemon's namespaces before it ends.
    """
    if not targets:
        return
    for p in targets.values():
        fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
        os.close(fd)
    errs: list[BaseException] = []

    def run() -> None:
        orig = {k: os.open(f"/proc/thread-self/ns/{k}", os.O_RDONLY | os.O_CLOEXEC) for k in targets}
        try:
            flags = 0
            for k in targets:
                flags |= _FLAGS[k]
            _check(_libc.unshare(flags), "unshare")
            try:
                if "uts" in targets and hostname:
                    socket.sethostname(hostname)
                for k, p in targets.items():
                    mount(f"/proc/thread-self/ns/{k}", str(p), None, MS_BIND)
            finally:
                for k, fd in orig.items():
                    _check(_libc.setns(fd, _FLAGS[k]), f"setns back to the host {k} namespace")
        except BaseException as e:  # handed to the caller's thread
            errs.append(e)
        finally:
            for fd in orig.values():
                os.close(fd)

    t = threading.Thread(target=run, name="podkit-pod-ns")
    t.start()
    t.join()
    if errs:
        for p in targets.values():
            try:
                unmount_all(p)
            except OSError as e:
                log.warning("could not unmount the pin %s after a failed pin: %s", p, e)
        raise errs[0]


def pin_pid(target: Path, ns_fd: int) -> None:
    """Point ``target`` at the pid namespace ``ns_fd`` is open on (the pod's infra's,
    opened through its checked process: pods/start.py).

    Re-pinned at each infra start: a pid namespace dies with its init, so the pin is
    only good while that infra lives, but its path stays the same for the containers.
    """
    unmount_all(target)
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    mount(f"/proc/self/fd/{ns_fd}", str(target), None, MS_BIND)


def mount_shm(path: Path, size: int) -> None:
    """The pod's /dev/shm: one tmpfs, bind-mounted into each container."""
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    if os.path.ismount(path):
        return
    mount("shm", str(path), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=1777,size={size}")


def release(path: Path) -> None:
    """Unmount everything the pod mounted under its state directory."""
    for sub in ("shm", "ns/ipc", "ns/uts", "ns/pid"):
        try:
            unmount_all(path / sub)
        except OSError as e:
            log.warning("could not unmount %s: %s", path / sub, e)


# Sysctls a pod may set: those the kernel keeps per namespace (as Kubernetes and runc
# allow), each applied inside the pod's own namespace of that kind.
_IPC_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}
_CLONE_NEWNET = 0x40000000


def sysctl_kind(key: str) -> str:
    """The namespace ("net", "ipc", "uts") a sysctl lives in; "" when host-wide."""
    if (
        key.startswith("net.")
        and not key.startswith("net.core.")
        or key in ("net.core.somaxconn", "net.core.xfrm_acq_expires")
    ):
        return "net"
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return ""


def apply_sysctls(values: dict[str, str], ns_paths: dict[str, str]) -> None:
    """Write each sysctl under /proc/sys from a thread that joined its namespace."""
    by_kind: dict[str, dict[str, str]] = {}
    for k, v in values.items():
        by_kind.setdefault(sysctl_kind(k), {})[k] = v
    flags = {"net": _CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}
    errs: list[BaseException] = []

    def run(kind: str, items: dict[str, str]) -> None:
        orig = os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(ns_paths[kind], os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(target, flags[kind]), f"setns {kind}")
            try:
                for k, v in items.items():
                    with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
                        f.write(str(v))
            finally:
                _check(_libc.setns(orig, flags[kind]), f"setns back to the host {kind} namespace")
        except BaseException as e:  # handed to the caller's thread
            errs.append(e)
        finally:
            os.close(orig)
            os.close(target)

    for kind, items in by_kind.items():
        t = threading.Thread(target=run, args=(kind, items), name=f"podkit-sysctl-{kind}")
        t.start()
        t.join()
        if errs:
            raise errs[0]
