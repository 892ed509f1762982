"""Which process a pid names: its start time, the kernel's guard against pid reuse, and
signals sent only to the process a pid was learned for.

A pid outlives nothing: once a container's process has exited and been reaped, the
kernel may give its number to any new process. The start time (field 22 of
``/proc/<pid>/stat``, clock ticks since boot) never changes for a process and two
processes with one pid cannot share it, so (pid, start time) names one process for
good, as runc's own state does (``init_process_start``).

Every pid podkitd reads from a file (conmon's pid file, runc's, an exec's, a cgroup's
``cgroup.procs``) is signalled through ``open_checked``: a pidfd is opened, the process
holding the pid is checked (``Check``), and the pidfd's process is found not to have
ended since, so the checked process and the pidfd's are one; the signal then goes
through the pidfd (``signal.pidfd_send_signal``), which can never reach a later
holder of the number. Where no start time was recorded (a container of an older
podkitd) the check is what the process runs (``runs``) or whose child it is
(``child_of``); a pid that fails its check is not signalled, and that is logged.
"""

from __future__ import annotations

import logging
import os
import select
import signal
from collections.abc import Callable
from typing import NamedTuple

from podkit.errors import NotFound

log = logging.getLogger(__name__)

# Why the process now holding the pid is not the one meant (None: it is the one).
Check = Callable[[int], "str | None"]


class NotTheProcess(NotFound):
    """The pid is held by another process than the one it was learned for."""


class Stat(NamedTuple):
    state: str  # R, S, D, Z...
    ppid: int
    start: int


def read_stat(pid: int, proc_dir_fd: int | None = None) -> Stat:
    """State, parent and start time of ``pid`` (of the process ``proc_dir_fd``, a
    ``/proc/<pid>`` descriptor, names when given). OSError (ENOENT, ESRCH) once it is
    gone, ValueError if the file is not what the kernel writes."""
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
    try:
        fields = data[data.rindex(b")") + 2 :].split()
        return Stat(fields[0].decode(), int(fields[1]), int(fields[19]))
    except IndexError:
        raise ValueError(f"/proc/{pid}/stat: unexpected content {data[:80]!r}") from None


def start_time(pid: int, proc_dir_fd: int | None = None) -> int:
    """The start time of ``pid`` (see ``read_stat``)."""
    return read_stat(pid, proc_dir_fd).start


def started_at(start: int) -> Check:
    """The process recorded with start time ``start``."""

    def check(pid: int) -> str | None:
        now = start_time(pid)
        if now == start:
            return None
        return (
            f"pid {pid} now belongs to another process (started at tick {now}, the recorded one at {start})"
        )

    return check


def runs(binary: str, *args: str) -> Check:
    """A process of ``binary`` whose command line holds ``args`` in a row (``-c <id>``):
    the check for a pid recorded without a start time. A ``binary`` that is a script
    (a wrapper that execs the real conmon, as tests and some hosts configure) names
    no exe to compare: the command line alone then identifies the process."""
    want = os.path.realpath(binary)
    script = _is_script(want)

    def check(pid: int) -> str | None:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")  # upgraded since
        if not script and exe != want:
            return f"pid {pid} runs {exe}, not {want}"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read(1 << 16).split(b"\0")]
        n = len(args)
        if not any(argv[i : i + n] == list(args) for i in range(len(argv) - n + 1)):
            return f"pid {pid} ({exe}) is not the one for {' '.join(args)}"
        return None

    return check


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def child_of(parent: int) -> Check:
    """A child of ``parent`` (a process already checked, e.g. the container's conmon,
    which reaps its init and exec'd processes)."""

    def check(pid: int) -> str | None:
        ppid = read_stat(pid).ppid
        return None if ppid == parent else f"pid {pid} is a child of {ppid}, not of {parent}"

    return check


def exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has ended (a pidfd polls readable then)."""
    return bool(select.select([pidfd], [], [], 0)[0])


def open_checked(pid: int, check: Check, what: str) -> int:
    """A pidfd of ``pid`` if the process holding it passes ``check``. NotFound once it
    has gone, NotTheProcess (logged) when the pid names another process.

    The check reads ``/proc/<pid>`` after the open, by number; the pidfd names whoever
    held the pid at the open. Both are one process if it has not ended between them:
    a pidfd that is still not readable after the check proves that (a live process
    keeps its pid). One that ended is gone either way.
    """
    gone = f"{what} (pid {pid}) is gone"
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        raise NotFound(gone) from None
    try:
        try:
            why = check(pid)
        except (OSError, ValueError):
            raise NotFound(gone) from None
        if why is not None:
            log.warning("%s: not signalled: %s", what, why)
            raise NotTheProcess(f"{what} is gone: {why}")
        if exited(fd):
            raise NotFound(gone)
    except BaseException:
        os.close(fd)
        raise
    return fd


def send(pid: int, sig: int, check: Check, what: str) -> bool:
    """``sig`` to ``pid`` through a checked pidfd; False (and nothing sent) when it is
    gone or is another process (see ``open_checked``)."""
    try:
        fd = open_checked(pid, check, what)
    except NotFound:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
