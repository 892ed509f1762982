"""Processes executed inside a running container (``podkit exec``).

We run ``<runtime> exec --process <json>`` in the foreground, as a child of the
daemon: the runtime joins the container, starts the process, forwards signals
to it, and exits with its exit code. Without a terminal the process's stdio are
our pipes. With a terminal we hand the runtime the slave side of a pty pair of
our own: runc then allocates the container-side pty and copies between the two
(it needs its stdio to be a terminal to do so), and follows our pty's size
whenever we send it SIGWINCH. A daemon crash ends an exec session (its stdio go
away with the daemon); containers themselves live on under conmon.

Start failures (executable not found, not executable) are told apart from the
process's own exit code: the runtime writes its pid file only once the process
runs, and its JSON log holds the reason when it could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
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

from podkit.errors import Conflict, Internal, NotFound
from podkit.runtime.runc import OCIRuntime, classify_start_error, runtime_error_message

log = logging.getLogger(__name__)


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class ExecProcess:
    """A running exec session: stream its output, feed its stdin, wait for its code."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, *, terminal: bool,
                 master_fd: int | None) -> None:
        self._proc = proc
        self._workdir = workdir
        self.terminal = terminal
        self._master = master_fd
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self._open_streams = 0
        self._exit: int | None = None
        self.pid: int | None = None  # the process's pid on the host

    @property
    def runtime_pid(self) -> int:
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

            loop.add_reader(master, readable)
            return
        for name, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr)):
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
            await self._queue.put(None)

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
        if self._proc.stdin is None:
            raise Conflict("exec session was started without stdin")
        self._proc.stdin.write(data)
        await self._proc.stdin.drain()

    def close_stdin(self) -> None:
        if self.terminal and self._master is not None:
            # ^D at the start of a line is end-of-file for a canonical tty reader.
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
            return
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    def resize(self, height: int, width: int) -> None:
        if not self.terminal or self._master is None:
            return
        set_winsize(self._master, height, width)
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGWINCH)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the exec'd process (the runtime forwards it)."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(sig)

    async def wait(self) -> int:
        """The process's exit code (128+N when killed by signal N)."""
        if self._exit is None:
            rc = await self._proc.wait()
            for t in self._readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._exit = 128 - rc if rc < 0 else rc
            self._cleanup()
        return self._exit

    def _cleanup(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
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


async def start_exec(runtime: OCIRuntime, cid: str, process: dict[str, Any], workdir: Path, *,
                     stdin: bool = False, console_size: tuple[int, int] | None = None,
                     start_timeout: float = 30.0) -> ExecProcess:
    """Start ``process`` (an OCI process object) in container ``cid``."""
    terminal = bool(process.get("terminal"))
    if terminal and console_size:
        # The process must see its size from the start, not after runc's first resize.
        process = {**process, "consoleSize": {"height": console_size[0], "width": console_size[1]}}
    workdir = workdir / f"exec-{uuid.uuid4().hex[:12]}"
    workdir.mkdir(parents=True, mode=0o700)
    spec_path = workdir / "process.json"
    pid_path = workdir / "pid"
    log_path = workdir / "runtime.log"
    spec_path.write_text(json.dumps(process))
    args = [runtime.binary, "--root", str(runtime.root), "--log-format", "json", "--log", str(log_path),
            "exec", "--process", str(spec_path), "--pid-file", str(pid_path), cid]
    master: int | None = None
    slave: int | None = None
    try:
        if terminal:
            master, slave = pty.openpty()
            if console_size:
                set_winsize(master, *console_size)
            os.set_blocking(master, False)
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
            os.close(slave)
            slave = None
        else:
            proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as e:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        raise Internal(f"cannot run {runtime.binary}: {e.strerror}") from None
    ep = ExecProcess(proc, workdir, terminal=terminal, master_fd=master)
    ep._start_readers()
    # Started once the pid file exists; failed if the runtime exits first.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    delay = 0.002
    while True:
        if pid_path.exists() and pid_path.stat().st_size > 0:
            with contextlib.suppress(ValueError, OSError):
                ep.pid = int(pid_path.read_text().strip())
            return ep
        if proc.returncode is not None or loop.time() > deadline:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), delay)
        delay = min(delay * 2, 0.05)
    if proc.returncode is None:
        await ep.close()
        raise Internal(f"exec in container {cid} did not start within {start_timeout:.0f}s")
    # The runtime exited before reporting a pid: it failed to start the process.
    msg = ""
    with contextlib.suppress(OSError):
        msg = runtime_error_message(log_path.read_text())
    await ep.output()
    await ep.wait()
    if "does not exist" in msg or "not running" in msg or "stopped" in msg:
        raise NotFound(f"container {cid} is not running") if "does not exist" in msg else \
            Conflict(f"container {cid} is not running")
    raise classify_start_error(msg or f"exec failed with exit code {ep._exit}")
