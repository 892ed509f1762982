"""Processes executed inside a running container (``podkit exec``).

Two launchers (podkit.runtime.exec_start), one ``ExecProcess`` interface (read /
write / close_stdin / resize / kill / wait), here:

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
import logging
import os
import signal
import struct
import termios
from pathlib import Path

from podkit.errors import Conflict, NotFound
from podkit.runtime import proc_identity
from podkit.runtime.conmon import read_sync_messages, sync_value

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
        self._pidfd: int | None = None  # the process itself, whatever reuses its pid

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

    def started(self, pid: int) -> None:
        """The exec'd process is ``pid`` (as its monitor reported it): held by a pidfd
        from now on, so that a signal never reaches a later holder of the number.

        The pid is checked to be our monitor's child (conmon reaps it, a tty's runc is
        its parent) while the monitor runs, so not yet reaped: a pid already given to
        another process fails that, and is never signalled."""
        self.pid = pid
        if self._proc.returncode is not None:
            return  # the monitor ended: so did the process
        try:
            self._pidfd = proc_identity.open_checked(
                pid, proc_identity.child_of(self._proc.pid), f"exec {self._workdir.name}"
            )
        except NotFound as e:  # it ended already: nothing to signal
            log.debug("exec %s: %s", self._workdir.name, e.message)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the exec'd process through its pidfd (its monitor, our child, before
        it is reported)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.pid and self._exit is None:
                # no pidfd: it had ended when reported; its monitor is left to report it
                if self._pidfd is not None:
                    signal.pidfd_send_signal(self._pidfd, sig)
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
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
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
