"""A running container's process, reached through ``/proc/<pid>`` only if that pid is
still the container's process.

Between a container's exit and its record the pid may be reaped and given to another
process (a host process, another container's): its root and namespaces are not this
container's. So the pid's directory is opened first and the process it names checked
against the start time recorded when the container was created; what is needed of it
(``root``, ``ns/net``...) is then opened through that descriptor, which keeps naming
the checked process (once it is gone, lookups in it fail, whatever takes the number
next). ``cp``/``export`` open the root this way, and namespace joins open the
namespace file (containers/ns_pins.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from podkit.errors import NotFound
from podkit.runtime.proc_identity import start_time


@dataclass(frozen=True)
class ProcessRoot:
    """A container's process: its pid and the start time recorded for it at create."""

    pid: int
    # None: not recorded (a container created by an older podkitd); the pid is trusted.
    start: int | None


def open_in_process(proc: ProcessRoot, name: str, flags: int, gone: str) -> int:
    """A descriptor of ``/proc/<pid>/<name>`` opened with ``flags``, only through the
    checked process's own directory. NotFound (``gone``, and why) once the process has
    gone, its pid taken by another process included."""
    try:
        pfd = os.open(f"/proc/{proc.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise NotFound(gone) from None
    try:
        try:
            now = start_time(proc.pid, pfd)
        except (OSError, ValueError, IndexError):
            raise NotFound(gone) from None
        if proc.start is not None and now != proc.start:
            raise NotFound(
                f"{gone}: pid {proc.pid} now belongs to another process (started at tick "
                f"{now}, the container's at {proc.start})"
            )
        try:
            return os.open(name, flags | os.O_CLOEXEC, dir_fd=pfd)
        except OSError:
            raise NotFound(gone) from None
    finally:
        os.close(pfd)


def read_in_process(proc: ProcessRoot, name: str, limit: int = 1 << 20) -> bytes:
    """The content of ``/proc/<pid>/<name>`` (at most ``limit`` bytes) of the checked
    process; NotFound as for ``open_in_process``."""
    fd = open_in_process(proc, name, os.O_RDONLY, f"process (pid {proc.pid}) is gone")
    try:
        chunks: list[bytes] = []
        size = 0
        while size < limit and (chunk := os.read(fd, min(65536, limit - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        raise NotFound(f"process (pid {proc.pid}) is gone") from None
    finally:
        os.close(fd)


def open_process_root(root: ProcessRoot) -> int:
    """An ``O_PATH`` descriptor of the process's root; NotFound once the process has
    gone, its pid taken by another process included."""
    gone = f"the container's file system is not available: its process (pid {root.pid}) is gone"
    return open_in_process(root, "root", os.O_PATH | os.O_DIRECTORY, gone)


def open_pidfd(proc: ProcessRoot) -> int:
    """A pidfd of the container's process, to signal it; NotFound once it is gone or its
    pid names another process.

    The pidfd names whichever process had the pid when it was opened. A start time read
    afterwards that is the recorded one means the container's process has held the pid
    since its create, so since before the open: the pidfd is its (and signals through
    it fail once it has gone, whatever takes the number next)."""
    gone = f"the container's process (pid {proc.pid}) is gone"
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:
        raise NotFound(gone) from None
    if proc.start is None:
        return fd
    try:
        now: int | None = start_time(proc.pid)
    except (OSError, ValueError, IndexError):
        now = None
    if now != proc.start:
        os.close(fd)
        raise NotFound(f"{gone}: pid {proc.pid} now belongs to another process" if now is not None else gone)
    return fd
