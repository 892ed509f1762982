"""The fault campaign's child kills: SIGKILL a child of podkitd in the middle of its work.

A runc (create, start, delete, kill), a CNI plugin (bridge, host-local, loopback: those
of the CNI bin dir) or an iptables-restore dies while podkitd waits on it. Victims are
found only among the processes of the campaign's own daemon — the descendants of
podkitd (``/proc/<pid>/task/*/children``, which covers the children of every thread)
and of the conmons whose pid files are in its state dir (runc create runs under conmon,
which podkitd started but which left it when it daemonized) — never by name across the
host: another engine's runc or plugin on the same host is never looked at. The victim
is signalled through a pidfd opened while its command line still matched, so a pid
that ended and was reused in between is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

CNI_DIR = "/usr/lib/cni"
CNI_PLUGINS = ("bridge", "host-local", "loopback")
RUNC_COMMANDS = ("create", "start", "delete", "kill")
# What each child-kill kind is after.
TARGETS = ("runc", "cni", "iptables-restore")


def _argv(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]
    return []


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return kids


def descendants(roots: list[int]) -> list[int]:
    """Every process below ``roots`` (breadth first, the roots left out)."""
    seen: set[int] = set(roots)
    out: list[int] = []
    todo = list(roots)
    while todo:
        for kid in _children(todo.pop(0)):
            if kid not in seen:
                seen.add(kid)
                out.append(kid)
                todo.append(kid)
    return out


def _cni_command(pid: int) -> str:
    with contextlib.suppress(OSError):
        for var in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if var.startswith(b"CNI_COMMAND="):
                return var.split(b"=", 1)[1].decode()
    return "?"


def what_it_is(
    target: str, pid: int, argv: list[str], ours: str, plugins: tuple[str, ...] = CNI_PLUGINS
) -> str:
    """The victim's description ("runc create", "bridge ADD", ...) when ``pid`` is one
    for ``target`` (for "cni", one of ``plugins``), else "". ``ours``: a path only the
    campaign's daemon's runc calls name (its state dir)."""
    if not argv:
        return ""
    name = os.path.basename(argv[0])
    if target == "runc":
        if name != "runc" or argv[1:2] == ["init"] or not any(ours in a for a in argv):
            return ""
        sub = next((a for a in argv[1:] if a in RUNC_COMMANDS), "")
        return f"runc {sub}" if sub else ""
    if target == "cni":
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return ""
        for plugin in plugins:
            if exe == f"{CNI_DIR}/{plugin}":
                return f"{plugin} {_cni_command(pid)}"
        return ""
    if target == "iptables-restore":
        return "iptables-restore" if name == "iptables-restore" else ""
    raise AssertionError(f"no target {target}")


def _ended(pid: int) -> bool:
    """A zombie: done, its parent not told yet (a kill would find nothing to stop)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


class ChildKiller(threading.Thread):
    """Watches the daemon's processes for the first ``target`` and SIGKILLs it
    ``delay`` seconds after it was seen (it may end first: then the next one is watched
    for); with ``count`` > 1 the next ones too (a retry's). ``killed`` says what was
    killed ("; "-separated), "" when nothing was."""

    POLL = 0.001

    def __init__(
        self,
        target: str,
        roots: Callable[[], list[int]],
        ours: str,
        delay: float,
        plugins: tuple[str, ...] = CNI_PLUGINS,
        count: int = 1,
    ) -> None:
        super().__init__(daemon=True)
        self.count = count
        self._done: set[int] = set()
        self._victims: list[str] = []
        self.plugins = plugins
        self.target = target
        self.roots = roots
        self.ours = ours
        self.delay = delay
        self._halt = threading.Event()

    @property
    def killed(self) -> str:
        return "; ".join(self._victims)

    def stop(self) -> str:
        self._halt.set()
        self.join(10)
        return self.killed

    def run(self) -> None:
        while not self._halt.is_set():
            for pid in descendants(self.roots()):
                what = what_it_is(self.target, pid, _argv(pid), self.ours, self.plugins)
                if what and pid not in self._done and self._kill(pid, what):
                    self._done.add(pid)
                    self._victims.append(what)
                    if len(self._victims) >= self.count:
                        return
            time.sleep(self.POLL)

    def _kill(self, pid: int, what: str) -> bool:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        try:
            # the pidfd is of the process the pid named when it was opened: still it?
            if what_it_is(self.target, pid, _argv(pid), self.ours, self.plugins) != what or _ended(pid):
                return False
            time.sleep(self.delay)
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            return False  # it ended first: wait for the next
        finally:
            os.close(fd)
        return True
