"""The files a container's conmon keeps (``ConmonPaths``) and reading them: pid files,
the exit file. They outlive podkitd: a restarted daemon reads a container's true state
from them (a pid from them is checked before it is signalled: proc_identity.py)."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from podkit.runtime import proc_identity

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


def kill_pidfile(path: Path, conmon: str, cid: str) -> None:
    """SIGKILL the conmon (of ``cid``) a pid file names, whose launch is abandoned: only
    if the pid still runs ``conmon`` for ``cid`` (proc_identity.send)."""
    pid = read_pid(path)
    if pid:
        proc_identity.send(pid, signal.SIGKILL, proc_identity.runs(conmon, "-c", cid), f"conmon of {cid}")
