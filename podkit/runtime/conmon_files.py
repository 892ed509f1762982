"""The files a container's conmon keeps (``ConmonPaths``) and reading them: pid files,
whether a pid is alive, the exit file. They outlive podkitd: a restarted daemon reads
a container's true state from them."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ConmonPaths:
    """Where one container's conmon keeps its files."""

    dir: Path  # per-container runtime dir: pidfiles, runtime log, persist dir
    exit_dir: Path
    socket_dir: Path
    cid: str

    @property
    def conmon_pidfile(self) -> Path:
        return self.dir / "conmon.pid"

    @property
    def pidfile(self) -> Path:
        return self.dir / "pid"

    @property
    def runtime_log(self) -> Path:
        return self.dir / "runtime.log"

    @property
    def conmon_log(self) -> Path:
        return self.dir / "conmon.log"

    @property
    def persist_dir(self) -> Path:
        return self.dir / "persist"

    @property
    def exit_file(self) -> Path:
        return self.exit_dir / self.cid

    @property
    def attach_socket(self) -> Path:
        return self.socket_dir / self.cid / "attach"

    @property
    def socket_link(self) -> Path:
        return self.socket_dir / self.cid


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def read_exit_file(path: Path) -> tuple[int, float] | None:
    """``(exit code, finished at (epoch seconds))`` from a conmon exit file."""
    try:
        text = path.read_text().strip()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    if not text:
        return None  # conmon is still writing it
    try:
        return int(text), mtime
    except ValueError:
        log.warning("unparsable exit file %s: %r", path, text)
        return None


def kill_pidfile(path: Path) -> None:
    """SIGKILL the process a pid file names (a conmon whose launch is abandoned)."""
    pid = read_pid(path)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
