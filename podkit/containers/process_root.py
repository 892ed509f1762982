"""A running container's process, reached through ``/proc/<pid>`` only if that pid is
still the container's process.

Between a container's exit and its record the pid may be reaped and given to another
process (a host process, another container's): its root and namespaces are not this
container's. So the pid's directory is opened first and the process it names checked
against the start time recorded when the container was created; what is needed of it
(``root``, ``ns/net``...) is then opened through that descriptor, which keeps naming
the checked process (once it is gone, lookups in it fail, whatever takes the number
next). ``cp``/``export`` open the root this way, namespace joins open the namespace
file (containers/ns_pins.py), and signals go through a pidfd checked the same way
(``open_pidfd``). A container of an older podkitd has no start time recorded: its pid
is taken for its init only while the container's conmon (itself checked) is its parent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from podkit.errors import NotFound
from podkit.runtime.proc_identity import Stat, open_checked, read_stat


@dataclass(frozen=True)
class ProcessRoot:
    """A container's process: its pid and the start time recorded for it at create."""

    pid: int
    # None: not recorded (a container created by an older podkitd). The pid is then
    # the container's only while it is a child of ``conmon``, the container's conmon
    # (checked: Runtime.live_conmon), which reaps the init; with no such conmon it is
    # refused.
    start: int | None
    conmon: int | None = None

    def mismatch(self, now: Stat) -> str | None:
        """Why the process ``now`` describes (of this pid) is not the container's."""
        if self.start is not None:
            if now.start == self.start:
                return None
            return (
                f"pid {self.pid} now belongs to another process (started at tick "
                f"{now.start}, the container's at {self.start})"
            )
        if self.conmon is None:
            return f"pid {self.pid} was recorded without a start time and no conmon vouches for it"
        if now.ppid != self.conmon:
            return f"pid {self.pid} is a child of {now.ppid}, not of the container's conmon {self.conmon}"
        return None


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
            now = read_stat(proc.pid, pfd)
        except (OSError, ValueError):
            raise NotFound(gone) from None
        if (why := proc.mismatch(now)) is not None:
            raise NotFound(f"{gone}: {why}")
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
    """A pidfd of the container's process, to signal it; NotFound once it is gone, or
    (logged) when its pid names another process (proc_identity.open_checked)."""

    def check(pid: int) -> str | None:
        return proc.mismatch(read_stat(pid))

    return open_checked(proc.pid, check, "the container's process")
