"""conmon, the per-container monitor: launch protocol, exit files, attach.

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
import errno
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podkit.errors import Conflict, Internal, NotFound, Unavailable

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR = 1, 2, 3
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr", STDIN: "stdin"}


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
    while it runs ``<runtime> create``: a cgroup v1 move costs ~1 ms per hierarchy
    (an RCU grace period each), which then overlaps the runtime instead of preceding it.
    Either way the move is done when this returns.
    """
    _prepare_dirs(paths)
    args = _conmon_args(conmon, runtime, runtime_args, cid=cid, name=name, bundle=bundle, paths=paths)
    args += _stdio_args(log_path, log_size_max, log_tag, terminal, stdin, leave_stdin_open)
    sync_r, start_w, proc = await _spawn(conmon, args, bundle, paths)
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
    try:
        msg, _ = await asyncio.wait_for(asyncio.gather(_read_first_message(sync_r), proc.wait()), timeout)
    except (TimeoutError, asyncio.CancelledError) as e:
        if placing is not None:
            placing.cancel()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        _kill_pidfile(paths.conmon_pidfile)
        if isinstance(e, asyncio.CancelledError):
            raise
        raise Internal(f"conmon did not report container {cid} created within {timeout:.0f}s") from None
    if placing is not None:
        await placing
    pid = sync_value(msg) if msg else None
    if pid is None or pid <= 0:
        raise RuntimeCreateError(_create_failure(msg, paths))
    return pid


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


async def _spawn(
    conmon: str, args: list[str], bundle: Path, paths: ConmonPaths
) -> tuple[int, int, asyncio.subprocess.Process]:
    """Start conmon, held on its start pipe: (sync pipe read end, start pipe write end, process)."""
    sync_r, sync_w = os.pipe()
    start_r, start_w = os.pipe()
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
        proc = await asyncio.create_subprocess_exec(
            *args,
            pass_fds=(sync_w, start_r),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err_fd,
            start_new_session=True,
            # conmon drops files (e.g. "oom") in its working directory.
            cwd=str(bundle),
        )
    except OSError as e:
        for fd in (sync_r, sync_w, start_r, start_w):
            os.close(fd)
        raise Unavailable(f"cannot run conmon {conmon}: {e.strerror}") from None
    finally:
        os.close(err_fd)
    os.close(sync_w)
    os.close(start_r)
    return sync_r, start_w, proc


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


async def _place_monitor(
    proc: asyncio.subprocess.Process, paths: ConmonPaths, place: Callable[[int], None]
) -> None:
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


def _kill_pidfile(path: Path) -> None:
    pid = read_pid(path)
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


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


# -------------------------------------------------------------------- attach


class AttachSession:
    """A connection to a container's conmon attach socket."""

    def __init__(self, sock: socket.socket, ctl_path: Path, cid: str) -> None:
        self._sock = sock
        self._ctl_path = ctl_path
        self.cid = cid
        self._closed = False

    @classmethod
    async def connect(cls, attach_path: Path, ctl_path: Path, cid: str) -> AttachSession:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        path_fd = None
        target = str(attach_path)
        try:
            if len(os.fsencode(target)) >= 100:
                # Longer than sun_path allows: connect through an O_PATH descriptor.
                path_fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
                target = f"/proc/self/fd/{path_fd}"
            await loop.sock_connect(sock, target)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise Conflict(f"container {cid} is not running (no attach socket)") from None
        except OSError as e:
            sock.close()
            if e.errno == errno.ENAMETOOLONG:
                raise Internal(f"attach socket path too long: {attach_path}") from None
            raise
        finally:
            if path_fd is not None:
                os.close(path_fd)
        return cls(sock, ctl_path, cid)

    async def read(self) -> tuple[str, bytes] | None:
        """The next chunk of output as ``(stream name, data)``; None at end."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(self._sock, 8193)
            except (ConnectionResetError, OSError):
                return None
            if not data:
                return None
            kind = data[0]
            if kind in (STDOUT, STDERR):
                return _STREAM_NAMES[kind], data[1:]
            # other frame kinds (none in API v1) are skipped

    async def write(self, data: bytes) -> None:
        if not data:
            return
        loop = asyncio.get_running_loop()
        # conmon reads the socket in chunks of up to 8192 bytes.
        for i in range(0, len(data), 8192):
            await loop.sock_sendall(self._sock, data[i : i + 8192])

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    async def resize(self, height: int, width: int) -> None:
        await asyncio.to_thread(write_ctl, self._ctl_path, f"1 {int(height)} {int(width)}\n")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    async def __aenter__(self) -> AttachSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def write_ctl(ctl_path: Path, line: str) -> None:
    try:
        fd = os.open(ctl_path, os.O_WRONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound(f"no control fifo at {ctl_path}: container not running under conmon") from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # nobody reading: conmon is gone
            raise Conflict("container is not running") from None
        raise
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
