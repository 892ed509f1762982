"""The root file system of a running container's process, opened only if that pid is
still the container's process.

``cp`` works in ``/proc/<pid>/root``. Between the container's exit and its record
the pid may be reaped and given to another process (a host process, another
container's): its root is not this container's. So the pid's directory is opened
first and the process it names checked against the start time recorded when the
container was created; ``root`` is then opened through that descriptor, which keeps
naming the checked process (once it is gone, lookups in it fail, whatever takes the
number next).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from podkit.errors import NotFound
from podkit.runtime.proc_identity import start_time


@dataclass(frozen=True)
class ProcessRoot:
    pid: int
    # The process's start time as recorded at create (None: not recorded, a container
    # created by an older podkitd; only the host-root check then applies).
    start: int | None


def open_process_root(root: ProcessRoot) -> int:
    """An ``O_PATH`` descriptor of the process's root; NotFound once the process has
    gone, its pid taken by another process included."""
    gone = f"the container's file system is not available: its process (pid {root.pid}) is gone"
    try:
        pfd = os.open(f"/proc/{root.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise NotFound(gone) from None
    try:
        try:
            now = start_time(root.pid, pfd)
        except (OSError, ValueError, IndexError):
            raise NotFound(gone) from None
        if root.start is not None and now != root.start:
            raise NotFound(
                f"{gone}: pid {root.pid} now belongs to another process (started at tick "
                f"{now}, the container's at {root.start}); the copy is refused"
            )
        try:
            return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        except OSError:
            raise NotFound(gone) from None
    finally:
        os.close(pfd)
