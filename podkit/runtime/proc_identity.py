"""Which process a pid names: its start time, the kernel's guard against pid reuse.

A pid outlives nothing: once a container's process has exited and been reaped, the
kernel may give its number to any new process. The start time (field 22 of
``/proc/<pid>/stat``, clock ticks since boot) never changes for a process and two
processes with one pid cannot share it, so (pid, start time) names one process for
good, as runc's own state does (``init_process_start``).
"""

from __future__ import annotations

import os


def start_time(pid: int, proc_dir_fd: int | None = None) -> int:
    """The start time of ``pid`` (of the process ``proc_dir_fd``, a ``/proc/<pid>``
    descriptor, names when given). OSError (ENOENT, ESRCH) once it is gone."""
    if proc_dir_fd is None:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    else:
        fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir_fd)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
    # fields are counted after its last ")"; starttime is field 22, the 20th after it.
    return int(data[data.rindex(b")") + 2 :].split()[19])
