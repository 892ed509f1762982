"""Interactive containers: `run -it`, `exec -it` and `attach` through a real pty.

The CLI runs on the slave side of a pty the test owns, as in a terminal: raw mode,
window size (and its changes via SIGWINCH) reaching the container, detach keys.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

from tests.helpers import BIN, Daemon, wait_for
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


class Term:
    """The CLI on a pty: write keys, read the screen until a pattern shows up."""

    def __init__(self, d: Daemon, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols, fd=slave)
        env = dict(os.environ, PODKIT_HOST=d.host, TERM="xterm")
        self.proc = subprocess.Popen(
            [str(BIN / "podkit"), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.seen = b""
        self.answered = 0

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(
            self.master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0)
        )

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    # (30 s: generous for a loaded CI machine; a passing test never waits that long)
    def expect(self, pattern: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen: {self.seen[-500:]!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"CLI closed the terminal before {pattern!r}: {self.seen[-500:]!r}")
                self.seen += chunk
                # busybox's line editor asks where the cursor is; answer as a terminal would
                while self.seen.count(b"\x1b[6n") > self.answered:
                    self.answered += 1
                    os.write(self.master, b"\x1b[1;1R")

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)


def test_run_it_size_resize_detach_and_attach(d: Daemon) -> None:
    t = Term(d, "run", "-it", "--name", "tty1", "busybox", "sh", rows=33, cols=101)
    t.expect(b"# ")
    t.send(b"stty size; echo $((6*7))\r")
    t.expect(b"33 101")
    t.expect(b"42")
    t.resize(40, 120)
    t.proc.send_signal(signal.SIGWINCH)
    t.send(b"stty size\r")
    t.expect(b"40 120")
    t.send(b"\x10\x11")  # ctrl-p ctrl-q: detach
    assert t.wait() == 0
    c = d.client()
    assert c.containers.get("tty1").state == "running"
    a = Term(d, "attach", "tty1")

    def answered() -> bool:
        # Keys typed while the CLI is still connecting can be eaten by the shell's redraw
        # on the size change; type again until the answer shows.
        a.send(b"echo back-$((1+1))\r")
        try:
            a.expect(b"back-2", timeout=1)
            return True
        except AssertionError:
            return False

    wait_for(answered, timeout=30, what="the attached shell to answer")
    a.send(b"exit 3\r")
    assert a.wait() == 3
    assert c.containers.get("tty1").exit_code == 3


def test_exec_it(d: Daemon) -> None:
    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="ex", init=True)
    t = Term(d, "exec", "-it", "ex", "sh", rows=20, cols=70)
    t.expect(b"# ")
    t.send(b"tty; stty size\r")
    t.expect(b"/dev/pts/")
    t.expect(b"20 70")
    t.send(b"exit 4\r")
    assert t.wait() == 4
    # The tty is born at the client's size: a program that reads it at once sees it.
    t = Term(d, "exec", "-it", "ex", "stty", "size", rows=21, cols=71)
    t.expect(b"21 71")
    assert t.wait() == 0
