"""conmon, the per-container monitor: its launch protocol (its files are in
conmon_files.py, attaching through it in conmon_attach.py).

One conmon per container calls ``<runtime> create``, holds the container's stdio
(pipes, or the pty master when ``-t``), writes its output to a CRI log file,
serves an attach socket, reaps the container and writes its exit code to
``<exit-dir>/<id>``. conmon double-forks and calls setsid, so it outlives podkitd:
a crashed daemon finds its containers still running, still logging, and - for
those that ended meanwhile - their exit codes in the exit files.

Launch protocol (conmon API version 1, as podman's libpod uses it):

- ``_OCI_STARTPIPE`` (an inherited fd): conmon blocks until we write to it, which
  gives us the moment to place it in a cgroup before it spawns anything.
- ``_OCI_SYNCPIPE``: conmon writes ``{"data": <pid>}`` once ``<runtime> create``
  succeeded, or ``{"data": -1, "message": "<runtime's error>"}``.
- the conmon we started exits right after forking its long-lived child; that
  child's pid lands in ``--conmon-pidfile``.

Attach: ``<socket-dir>/<id>/attach`` is a SOCK_SEQPACKET socket; every packet read
from it starts with a byte naming the stream (2 stdout, 3 stderr), what is
written to it goes to the container's stdin (when started with ``-i``); closing
the write side closes stdin. ``<bundle>/ctl`` is a fifo taking ``"1 <h> <w>\\n"``
to resize the container's terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podkit.errors import Internal, Unavailable
from podkit.runtime.conmon_attach import STDERR, STDIN, STDOUT, AttachSession, write_ctl
from podkit.runtime.conmon_files import ConmonPaths, kill_pidfile, read_exit_file, read_pid

log = logging.getLogger(__name__)

# What the runtime layer's modules and its callers import from here.
__all__ = [
    "STDERR",
    "STDIN",
    "STDOUT",
    "AttachSession",
    "ConmonPaths",
    "RuntimeCreateError",
    "launch",
    "read_exit_file",
    "read_pid",
    "read_sync_messages",
    "sync_value",
    "write_ctl",
]


# While conmon runs <runtime> create: how often its children are looked at, and how long
# it may go on without one before the create counts as dead (_runtime_gone).
RUNTIME_POLL = 0.25
RUNTIME_GONE_GRACE = 5.0


def read_sync_messages(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            log.debug("conmon sync pipe: unparsable %r", line)
            continue
        if isinstance(msg, dict):
            out.append(msg)
    return out


def sync_value(msg: dict[str, Any]) -> int | None:
    for key in ("data", "pid"):
        if key in msg:
            try:
                return int(msg[key])
            except (TypeError, ValueError):
                return None
    return None


async def _read_first_message(fd: int) -> dict[str, Any] | None:
    """The first JSON message conmon writes to the sync pipe (None at EOF).

    The long-lived conmon keeps the pipe open, so we read line by line rather
    than to end of file.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    f = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), f)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return None
            for msg in read_sync_messages(line):
                if sync_value(msg) is not None:
                    return msg
    finally:
        transport.close()


async def launch(
    conmon: str,
    runtime: str,
    runtime_args: list[str],
    *,
    cid: str,
    name: str,
    bundle: Path,
    paths: ConmonPaths,
    log_path: str | None,
    log_size_max: int,
    terminal: bool,
    stdin: bool,
    leave_stdin_open: bool = False,
    log_tag: str | None = None,
    timeout: float = 60.0,
    before_start: Callable[[int], None] | None = None,
    place: Callable[[int], None] | None = None,
) -> int:
    """Start conmon for a created-not-started container; returns the container's pid.

    ``before_start(conmon_pid)`` runs while conmon waits on its start pipe - the
    moment to move it into a cgroup of its own, so that stopping the daemon's
    service (systemd kills a unit's whole cgroup) does not take conmon along.
    ``place(monitor_pid)`` does the same for the long-lived conmon, in a worker thread
    while it runs ``<runtime> create``, so that the move (a write per cgroup v1
    hierarchy: ~0.24 ms for all ten measured here) overlaps the runtime instead of
    preceding it.
    Either way the move is done when this returns.
    """
    _prepare_dirs(paths)
    args = _conmon_args(conmon, runtime, runtime_args, cid=cid, name=name, bundle=bundle, paths=paths)
    args += _stdio_args(log_path, log_size_max, log_tag, terminal, stdin, leave_stdin_open)
    # Without a hook to run first, conmon's go-ahead is in the start pipe before conmon
    # is: it reads it at once instead of waiting for this loop to be scheduled back after
    # the spawn (~1 ms of the create on a busy host).
    sync_r, start_w, proc = await _spawn(conmon, args, bundle, paths, go_now=before_start is None)
    if start_w >= 0:
        if before_start is not None:
            try:
                before_start(proc.pid)
            except Exception as e:  # never fail a container because of this
                log.warning("before_start hook for conmon %d failed: %s", proc.pid, e)
        try:
            # Let conmon go on.
            os.write(start_w, b"0")
        except OSError:
            pass
        finally:
            os.close(start_w)
    placing: asyncio.Future[None] | None = None
    if place is not None:
        placing = asyncio.ensure_future(_place_monitor(proc, paths, place))
    reported = asyncio.ensure_future(asyncio.gather(_read_first_message(sync_r), proc.wait()))
    watch = asyncio.ensure_future(_runtime_gone(paths, runtime))
    gone: str | None = None
    try:
        done, _ = await asyncio.wait({reported, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if reported not in done:
            gone = watch.result() if watch in done else None
            raise TimeoutError
        msg, _ = reported.result()
    except (TimeoutError, asyncio.CancelledError) as e:
        reported.cancel()
        reported.add_done_callback(_retrieved)  # what it ends with is moot now
        if placing is not None:
            placing.cancel()
        proc.kill()
        await proc.wait()
        kill_pidfile(paths.conmon_pidfile, conmon, cid)
        if isinstance(e, asyncio.CancelledError):
            raise
        if gone is not None:
            raise RuntimeCreateError(gone) from None
        raise Internal(f"conmon did not report container {cid} created within {timeout:.0f}s") from None
    finally:
        watch.cancel()
    if placing is not None:
        await placing
    pid = sync_value(msg) if msg else None
    if pid is None or pid <= 0:
        raise RuntimeCreateError(_create_failure(msg, paths))
    return pid


def _retrieved(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


async def _runtime_gone(paths: ConmonPaths, runtime: str, grace: float = RUNTIME_GONE_GRACE) -> str:
    """Returns (why) once conmon has had no ``<runtime> create`` child for ``grace``
    seconds without reporting; never returns while the create runs.

    conmon reports a failed create only after reading the container's stderr to its
    end, and a create killed by a signal leaves its ``runtime init`` behind, holding
    that pipe open and waiting for a start that never comes: without this, the caller
    waited out the whole create timeout (found by the fault campaign, scripts/chaos.py,
    killing runc create). A create that ends normally is reported at once, well inside
    the grace.
    """
    comm = os.path.basename(runtime)[:15]  # the kernel's comm of the runtime's process
    loop = asyncio.get_running_loop()
    absent_since: float | None = None
    while True:
        await asyncio.sleep(RUNTIME_POLL)
        monitor = read_pid(paths.conmon_pidfile)
        kids = _children_comms(monitor) if monitor else None
        if kids is None or comm in kids:
            absent_since = None  # not up yet, gone (its own exit reports), or creating
            continue
        now = loop.time()
        if absent_since is None:
            absent_since = now
        elif now - absent_since >= grace:
            return f"{comm} create ended without conmon reporting the container (was it killed?)"


def _children_comms(pid: int) -> list[str] | None:
    """The comm of each child of ``pid`` (None once it is gone)."""
    out: list[str] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/comm") as f:
                    out.append(f.read().strip())
            except OSError:
                continue
    return out


def _prepare_dirs(paths: ConmonPaths) -> None:
    """conmon's directories, without the files of an earlier run of the same id."""
    paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.persist_dir.mkdir(exist_ok=True, mode=0o700)
    paths.exit_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (paths.exit_file, paths.pidfile, paths.conmon_pidfile, paths.runtime_log):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    if paths.socket_link.is_symlink():
        paths.socket_link.unlink()


def _conmon_args(
    conmon: str,
    runtime: str,
    runtime_args: list[str],
    *,
    cid: str,
    name: str,
    bundle: Path,
    paths: ConmonPaths,
) -> list[str]:
    """conmon's command line: the container, the runtime and where the files go."""
    args = [
        conmon,
        "--api-version",
        "1",
        "-c",
        cid,
        "-u",
        cid,
        "-n",
        name or cid,
        "-r",
        runtime,
        "-b",
        str(bundle),
        "-p",
        str(paths.pidfile),
        "--conmon-pidfile",
        str(paths.conmon_pidfile),
        "--exit-dir",
        str(paths.exit_dir),
        "--persist-dir",
        str(paths.persist_dir),
        "--socket-dir-path",
        str(paths.socket_dir),
        "--log-level",
        os.environ.get("PODKIT_CONMON_LOG_LEVEL", "info"),
        "--runtime-arg",
        "--log-format=json",
        "--runtime-arg",
        f"--log={paths.runtime_log}",
    ]
    for a in runtime_args:
        args += ["--runtime-arg", a]
    return args


def _stdio_args(
    log_path: str | None,
    log_size_max: int,
    log_tag: str | None,
    terminal: bool,
    stdin: bool,
    leave_stdin_open: bool,
) -> list[str]:
    """conmon's flags for the container's log and stdio."""
    args: list[str] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        args += ["-l", f"k8s-file:{log_path}"]
    else:
        args += ["-l", "none"]
    if log_size_max and log_size_max > 0:
        args += ["--log-size-max", str(log_size_max)]
    if log_tag:
        args += ["--log-tag", log_tag]
    if terminal:
        args.append("-t")
    if stdin:
        args.append("-i")
        if leave_stdin_open:
            args.append("--leave-stdin-open")
    return args


class _Launched:
    """The conmon we started, which exits once it has forked the long-lived one.

    A plain ``subprocess.Popen`` waited for through a pidfd: asyncio's child watcher
    starts a thread per child and blocks the event loop until that thread has run,
    ~1-2 ms of every create on a busy host (measured between the spawn and its return).
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._exit: asyncio.Future[int] | None = None

    async def wait(self) -> int:
        """Its exit status, once it has exited (and been reaped); callers may share it."""
        if self._exit is None:
            loop = asyncio.get_running_loop()
            self._exit = loop.create_future()
            try:
                fd = os.pidfd_open(self.pid)
            except OSError:  # no pidfds here: a worker thread waits instead
                self._exit.set_result(await asyncio.to_thread(self.proc.wait))
            else:
                loop.add_reader(fd, self._exited, loop, fd)
        return await asyncio.shield(self._exit)

    def _exited(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        loop.remove_reader(fd)
        os.close(fd)
        rc = self.proc.wait()  # it has exited: this reaps it, without blocking
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(rc)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


async def _spawn(
    conmon: str, args: list[str], bundle: Path, paths: ConmonPaths, *, go_now: bool = False
) -> tuple[int, int, _Launched]:
    """Start conmon, held on its start pipe: (sync pipe read end, start pipe write end, process).

    ``go_now``: the go-ahead is written (and the write end closed, -1 returned for it)
    before conmon starts, so it never waits.
    """
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
    if go_now:
        os.write(start_w, b"0")  # an empty pipe's buffer takes it: never blocks
        os.close(start_w)
        start_w = -1
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "_OCI_SYNCPIPE": str(sync_w),
        "_OCI_STARTPIPE": str(start_r),
    }
    if os.environ.get("XDG_RUNTIME_DIR"):
        env["XDG_RUNTIME_DIR"] = os.environ["XDG_RUNTIME_DIR"]
    # conmon's own diagnostics go to a file: the long-lived conmon keeps its
    # stderr, so a pipe would never reach end of file.
    err_fd = os.open(paths.conmon_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(
            args,
            pass_fds=(sync_w, start_r),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err_fd,
            start_new_session=True,
            # conmon drops files (e.g. "oom") in its working directory.
            cwd=str(bundle),
        )
    except OSError as e:
        for fd in (sync_r, sync_w, start_r, start_w):
            if fd >= 0:
                os.close(fd)
        raise Unavailable(f"cannot run conmon {conmon}: {e.strerror}") from None
    finally:
        os.close(err_fd)
    os.close(sync_w)
    os.close(start_r)
    return sync_r, start_w, _Launched(proc)


def _create_failure(msg: dict[str, Any] | None, paths: ConmonPaths) -> str:
    """Why the create failed: the runtime's log, else conmon's message or its own log."""
    from podkit.runtime.runc import runtime_error_message

    detail = str(msg.get("message") or "") if msg else ""
    with contextlib.suppress(OSError):
        rt_log = paths.runtime_log.read_text()
        if rt_log.strip():
            detail = runtime_error_message(rt_log) or detail
    if not detail:
        with contextlib.suppress(OSError):
            detail = paths.conmon_log.read_text().strip()
        detail = detail or "conmon exited without reporting a pid"
    return detail


async def _place_monitor(proc: _Launched, paths: ConmonPaths, place: Callable[[int], None]) -> None:
    """Run ``place`` on the long-lived conmon (never fails the container)."""
    # The conmon we started exits once it has forked the monitor and written its pid.
    await proc.wait()
    monitor = read_pid(paths.conmon_pidfile) or proc.pid
    try:
        await asyncio.to_thread(place, monitor)
    except Exception as e:
        log.warning("placing conmon %d in its cgroup failed: %s", monitor, e)


class RuntimeCreateError(Exception):
    """``<runtime> create`` failed; the message is the runtime's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
