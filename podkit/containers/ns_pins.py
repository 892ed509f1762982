"""Another container's namespaces, held open while ``runc create`` joins them.

``--network/--pid/--ipc container:X`` hand runc a namespace path. ``/proc/<pid>/ns/net``
would be resolved by runc later, by whatever process has that pid then: X's init may
have exited and its pid been reused by a host process or another container's. So the
namespace file is opened here through X's checked ``/proc/<pid>`` directory
(process_root.py: the start time recorded at X's create must match) and runc is given
``/proc/<podkitd>/fd/<n>``: podkitd lives and keeps that descriptor open until runc
create has returned, so the path names the checked namespace and nothing else (a
``/proc/self`` path would be runc's own). No mount is made, so nothing is left behind
by a crash.
"""

from __future__ import annotations

import logging
import os

from podkit.containers.process_root import ProcessRoot, open_in_process
from podkit.errors import Conflict, NotFound

log = logging.getLogger(__name__)


class NamespacePins:
    """The namespace descriptors of one start; closed once runc has joined them."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def pin(self, proc: ProcessRoot, ns_file: str, what: str) -> str:
        """A path naming ``ns/<ns_file>`` of the checked process, for the spec. Conflict
        (409, naming ``what``) when the process is gone or its pid now names another."""
        try:
            fd = open_in_process(proc, f"ns/{ns_file}", os.O_RDONLY, f"its process (pid {proc.pid}) is gone")
        except NotFound as e:
            raise Conflict(f"{what}: {e.message}; refusing to join its namespace") from None
        self._fds.append(fd)
        return f"/proc/{os.getpid()}/fd/{fd}"

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError as e:
                log.warning("closing a namespace pin (fd %d) failed: %r", fd, e)
        self._fds.clear()
