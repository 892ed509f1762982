"""Processes executed inside a running container (``podkit exec``).

Two launchers, one ``ExecProcess`` interface (read / write / close_stdin /
resize / kill / wait):

- **Without a terminal**: ``conmon --exec --sync -l passthrough``, a child of the
  daemon. conmon runs ``<runtime> exec -d`` and, being a subreaper, becomes the
  parent of the exec'd process; in passthrough mode the process's stdio are our
  own pipes, handed straight through (nothing copies them, so a background child
  that keeps stdout open cannot hold the session up). conmon reports on its sync
  pipe the process's pid once started, then its exit code. (``runc exec`` in the
  foreground would copy stdio itself and not return before every writer of the
  output pipe is gone.)
- **With a terminal**: ``<runtime> exec --process`` in the foreground, given the
  slave side of a pty pair of ours as its stdio: runc allocates the container-side
  pty and copies between the two (it insists its stdio be a terminal to do so), and
  follows our pty's size whenever we send it SIGWINCH.

Either way the runtime's pid file tells "started" from "could not start"
(executable not found → ``CommandNotFound``, not executable or bad working
directory → ``CannotExecute``, with the runtime's message from its JSON log). An
exec session ends with the daemon; the container does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import pty
import signal
import struct
import termios
import uuid
from pathlib import Path
from typing import Any

from podkit.errors import Conflict, Internal, NotFound, Unavailable
from podkit.runtime.conmon import read_sync_messages, sync_value
from podkit.runtime.runc import OCIRuntime, classify_start_error, runtime_error_message

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 2.0  # seconds to wait for output after the process ended


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class _LineReader:
    """Newline-delimited JSON messages from conmon's sync pipe, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport) -> None:
        self._reader = reader
        self._transport = transport

    @classmethod
    async def open(cls, fd: int) -> _LineReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        return cls(reader, transport)

    async def next(self) -> int | None:
        while True:
            line = await self._reader.readline()
            if not line:
                return None
            for msg in read_sync_messages(line):
                v = sync_value(msg)
                if v is not None:
                    return v

    def close(self) -> None:
        self._transport.close()


class ExecProcess:
    """A running exec session: stream its output, feed its stdin, wait for its code."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        workdir: Path,
        *,
        terminal: bool,
        master_fd: int | None = None,
        stdout: asyncio.StreamReader | None = None,
        stderr: asyncio.StreamReader | None = None,
        stdin: asyncio.StreamWriter | None = None,
        sync: _LineReader | None = None,
    ) -> None:
        self._proc = proc
        self._workdir = workdir
        self.terminal = terminal
        self._master = master_fd
        self._streams = {"stdout": stdout, "stderr": stderr}
        self._stdin = stdin
        self._sync = sync
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._open_streams = 0
        self._exit: int | None = None
        self._eof = asyncio.Event()  # the pty reached end of file
        self.pid: int | None = None  # the process's pid on the host

    @property
    def monitor_pid(self) -> int:
        """The pid of our child watching the process (conmon, or runc for a tty)."""
        return self._proc.pid

    def _start_readers(self) -> None:
        if self.terminal and self._master is not None:
            self._open_streams = 1
            loop = asyncio.get_running_loop()
            master = self._master

            def readable() -> None:
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    return
                except OSError:  # EIO: every slave closed
                    data = b""
                if data:
                    self._queue.put_nowait(("stdout", data))
                else:
                    loop.remove_reader(master)
                    self._queue.put_nowait(None)
                    self._eof.set()

            loop.add_reader(master, readable)
            return
        for name, stream in self._streams.items():
            if stream is not None:
                self._open_streams += 1
                self._readers.append(asyncio.create_task(self._pump(name, stream)))

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await stream.read(65536)
                if not data:
                    break
                await self._queue.put((name, data))
        finally:
            self._queue.put_nowait(None)

    async def read(self) -> tuple[str, bytes] | None:
        """Next ``(stream, data)`` (stream is "stdout" or "stderr"); None when all output ended."""
        while self._open_streams > 0:
            item = await self._queue.get()
            if item is None:
                self._open_streams -= 1
                continue
            return item
        return None

    async def output(self) -> tuple[bytes, bytes]:
        """All remaining output, as (stdout, stderr)."""
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        while (item := await self.read()) is not None:
            out[item[0]].extend(item[1])
        return bytes(out["stdout"]), bytes(out["stderr"])

    async def write(self, data: bytes) -> None:
        if self.terminal and self._master is not None:
            view = memoryview(data)
            loop = asyncio.get_running_loop()
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except BlockingIOError:
                    fut: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(self._master, fut.set_result, None)
                    try:
                        await fut
                    finally:
                        loop.remove_writer(self._master)
            return
        if self._stdin is None:
            raise Conflict("exec session was started without stdin")
        self._stdin.write(data)
        await self._stdin.drain()

    def close_stdin(self) -> None:
        if self.terminal and self._master is not None:
            # ^D at the start of a line is end-of-file for a canonical tty reader.
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
            return
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.close()

    def resize(self, height: int, width: int) -> None:
        if not self.terminal or self._master is None:
            return
        set_winsize(self._master, height, width)
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGWINCH)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the exec'd process."""
        target = self.pid if self.pid and self._exit is None else None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if target:
                os.kill(target, sig)
            else:
                self._proc.send_signal(sig)

    async def wait(self) -> int:
        """The process's exit code (128+N when killed by signal N)."""
        if self._exit is None:
            rc = await self._proc.wait()
            code: int | None = None
            if self._sync is not None:
                try:
                    code = await asyncio.wait_for(self._sync.next(), DRAIN_TIMEOUT)
                except TimeoutError:
                    pass  # the wait status below is all there is
                except Exception as e:
                    log.warning("exec %s: reading its exit code from conmon: %s", self, e)
            if code is None:
                code = 128 - rc if rc < 0 else rc
            # Let the readers drain what the process wrote last. A background child
            # that inherited the output keeps it open: give up on it after a while
            # (the pumps then report end of output).
            if self.terminal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._eof.wait(), DRAIN_TIMEOUT)
            elif self._readers:
                _, pending = await asyncio.wait(self._readers, timeout=DRAIN_TIMEOUT)
                for t in pending:
                    t.cancel()
            if self._exit is None:
                self._exit = code
                self._cleanup()
        return self._exit

    def _cleanup(self) -> None:
        if self._master is not None:
            try:
                if asyncio.get_running_loop().remove_reader(self._master) and not self._eof.is_set():
                    self._queue.put_nowait(None)  # readers see the end of output
                    self._eof.set()
            except Exception as e:  # the loop is closing: nobody reads any more
                log.warning("exec %s: stopping the terminal reader: %s", self, e)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
        if self._sync is not None:
            self._sync.close()
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.close()
        for f in self._workdir.iterdir() if self._workdir.exists() else []:
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self._workdir.rmdir()

    async def close(self) -> None:
        """Kill the session if it is still running and release everything."""
        if self._proc.returncode is None:
            self.kill(signal.SIGKILL)
        await self.wait()


def _failure(cid: str, log_path: Path, fallback: str) -> Exception:
    msg = ""
    with contextlib.suppress(OSError):
        msg = runtime_error_message(log_path.read_text())
    if "does not exist" in msg:
        return NotFound(f"container {cid} does not exist")
    if "not running" in msg or "stopped" in msg or "paused" in msg:
        return Conflict(f"container {cid} is not running")
    return classify_start_error(msg or fallback)


async def start_exec(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    *,
    stdin: bool = False,
    console_size: tuple[int, int] | None = None,
    conmon: str | None = None,
    bundle: Path | None = None,
    detach: bool = False,
    start_timeout: float = 30.0,
) -> ExecProcess:
    """Start ``process`` (an OCI process object) in container ``cid``.

    Without a terminal ``conmon`` and the container's ``bundle`` are needed.
    ``detach`` (``exec -d``): the process's stdio are /dev/null, nothing to read;
    ``wait()`` still gives its exit code.
    """
    if detach:
        process = {**process, "terminal": False}
        stdin = False
    terminal = bool(process.get("terminal"))
    if terminal and console_size:
        # The process must see its size from the start, not after runc's first resize.
        process = {**process, "consoleSize": {"height": console_size[0], "width": console_size[1]}}
    workdir = workdir / f"exec-{uuid.uuid4().hex[:12]}"
    workdir.mkdir(parents=True, mode=0o700)
    try:
        if terminal:
            return await _start_tty(runtime, cid, process, workdir, console_size, start_timeout)
        if not conmon or bundle is None:
            raise Internal("exec without a terminal needs conmon and the container's bundle")
        return await _start_pipes(
            runtime, cid, process, workdir, stdin, conmon, bundle, start_timeout, detach
        )
    except BaseException:
        for f in workdir.iterdir() if workdir.exists() else []:
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
        raise


async def _start_pipes(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    stdin: bool,
    conmon: str,
    bundle: Path,
    start_timeout: float,
    detach: bool = False,
) -> ExecProcess:
    spec_path, pid_path, log_path = workdir / "process.json", workdir / "pid", workdir / "runtime.log"
    spec_path.write_text(json.dumps(process))
    args = _exec_args(runtime, cid, workdir, conmon, bundle, spec_path, pid_path, log_path)
    if stdin:
        args.append("-i")
    loop = asyncio.get_running_loop()
    if detach:
        out_r, out_w = -1, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        err_r, err_w = -1, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1)
    sync_r, sync_w = os.pipe()
    child_fds = (in_r, out_w, err_w, sync_w)
    try:
        # Plain fds, not asyncio pipes: asyncio's wait() would otherwise wait for
        # every holder of the output (a background child) to go.
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(sync_w,),
            start_new_session=True,
            cwd=str(workdir),  # conmon drops files (e.g. "oom") in its working directory
            env={
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "_OCI_SYNCPIPE": str(sync_w),
            },
        )
    except OSError as e:
        for fd in (out_r, err_r, sync_r, in_w):
            if fd >= 0:
                os.close(fd)
        raise Unavailable(f"cannot run conmon {conmon}: {e.strerror}") from None
    finally:
        for fd in child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    streams, writer = await _connect_pipes(loop, out_r, err_r, in_w if stdin else None)
    sync = await _LineReader.open(sync_r)
    ep = ExecProcess(
        proc, workdir, terminal=False, stdout=streams[0], stderr=streams[1], stdin=writer, sync=sync
    )
    ep._start_readers()
    try:
        pid = await asyncio.wait_for(sync.next(), start_timeout)
    except TimeoutError:
        await ep.close()
        raise Internal(f"exec in container {cid} did not start within {start_timeout:.0f}s") from None
    if pid is None or pid <= 0:
        err = _failure(cid, log_path, f"exec failed (conmon exit {await proc.wait()})")
        await ep.close()
        raise err
    ep.pid = pid
    return ep


def _exec_args(
    runtime: OCIRuntime,
    cid: str,
    workdir: Path,
    conmon: str,
    bundle: Path,
    spec_path: Path,
    pid_path: Path,
    log_path: Path,
) -> list[str]:
    """conmon's command line for an exec without a terminal (output through our pipes)."""
    return [
        conmon,
        "--api-version",
        "1",
        "-c",
        cid,
        "-u",
        workdir.name,
        "-n",
        workdir.name,
        "-r",
        runtime.binary,
        "-b",
        str(bundle),
        "-p",
        str(pid_path),
        "--exit-dir",
        str(workdir),
        "-l",
        "passthrough",
        "--sync",
        "--exec",
        "--exec-process-spec",
        str(spec_path),
        "--log-level",
        "error",
        "--runtime-arg",
        "--log-format=json",
        "--runtime-arg",
        f"--log={log_path}",
        "--runtime-arg",
        f"--root={runtime.root}",
    ]


async def _connect_pipes(
    loop: asyncio.AbstractEventLoop, out_r: int, err_r: int, in_w: int | None
) -> tuple[list[asyncio.StreamReader | None], asyncio.StreamWriter | None]:
    """Our ends of the exec's pipes as asyncio streams (a -1 read end: none, detached)."""
    streams: list[asyncio.StreamReader | None] = []
    for fd in (out_r, err_r):
        if fd < 0:
            streams.append(None)
            continue
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(
            functools.partial(asyncio.StreamReaderProtocol, reader), os.fdopen(fd, "rb", buffering=0)
        )
        streams.append(reader)
    writer = None
    if in_w is not None:
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(), os.fdopen(in_w, "wb", buffering=0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return streams, writer


async def _start_tty(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    console_size: tuple[int, int] | None,
    start_timeout: float,
) -> ExecProcess:
    spec_path, pid_path, log_path = workdir / "process.json", workdir / "pid", workdir / "runtime.log"
    spec_path.write_text(json.dumps(process))
    args = [
        runtime.binary,
        "--root",
        str(runtime.root),
        "--log-format",
        "json",
        "--log",
        str(log_path),
        "exec",
        "--process",
        str(spec_path),
        "--pid-file",
        str(pid_path),
        cid,
    ]
    master, slave = pty.openpty()
    try:
        if console_size:
            set_winsize(master, *console_size)
        os.set_blocking(master, False)
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
    except OSError as e:
        os.close(master)
        raise Internal(f"cannot run {runtime.binary}: {e.strerror}") from None
    finally:
        os.close(slave)
    ep = ExecProcess(proc, workdir, terminal=True, master_fd=master)
    ep._start_readers()
    # Started once the pid file exists; failed if the runtime exits first.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    delay = 0.002
    exited = asyncio.ensure_future(proc.wait())
    try:
        while True:
            if pid_path.exists() and pid_path.stat().st_size > 0:
                with contextlib.suppress(ValueError, OSError):
                    ep.pid = int(pid_path.read_text().strip())
                return ep
            if exited.done() or loop.time() > deadline:
                break
            await asyncio.wait({exited}, timeout=delay)
            delay = min(delay * 2, 0.05)
    finally:
        if not exited.done():
            exited.cancel()
    if proc.returncode is None:
        await ep.close()
        raise Internal(f"exec in container {cid} did not start within {start_timeout:.0f}s")
    err = _failure(cid, log_path, f"exec failed with exit code {proc.returncode}")
    await ep.close()
    raise err
