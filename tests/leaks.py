"""Finding what a test left behind: mounts and processes under its directories."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts_under(base: Path) -> list[str]:
    prefix = str(base).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = _unescape(line.split()[4])
            if target.startswith(prefix) or target == prefix[:-1]:
                found.append(target)
    return found


def unmount_all_under(base: Path) -> list[str]:
    """Lazily unmount everything below base, deepest first; returns what was mounted.

    Done before deleting a test directory: rmtree through a leftover bind mount
    would delete the files of whatever is mounted there.
    """
    leaked = mounts_under(base)
    for target in sorted(set(leaked), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
    return leaked


def children_of(pid: int) -> list[int]:
    """Direct children of a process (from /proc/<pid>/stat's ppid field)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                # the command (field 2) may hold spaces and parens: split after its ")"
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in cmd:
                found.append((int(entry), cmd.strip()))
    return found
