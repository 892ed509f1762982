"""The CLI when podkitd dies mid-request (issue 10, item 11): `Error: lost the
connection to podkitd ...` and exit 125, never a Python traceback, for every command.

The peer is a stand-in for a daemon killed at an exact byte (a real SIGKILL cannot be
timed to land between the headers and the body): a unix socket server that reads
the request and then closes, resets, or cuts its answer short. The real CLI runs
against it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import BIN

_HEAD_END = b"\r\n\r\n"


class _DyingDaemon:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.mode = "close"
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(16)
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if self.mode == "reset":
            # close with the request unread: the client's next read is ECONNRESET
            select.select([conn], [], [], 10)
            return
        buf = b""
        with contextlib.suppress(OSError):
            while _HEAD_END not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            if self.mode == "truncated":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"
                )
            elif self.mode == "chunked":
                conn.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{"a":')
            # "close" and "upload" (a body still coming): just go away

    def close(self) -> None:
        self._stop = True
        self.srv.close()
        # accept() may hold on: one connection wakes it to see _stop
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.path))
        self.thread.join(10)


@pytest.fixture
def dying(tmp_path: Path) -> Iterator[_DyingDaemon]:
    d = _DyingDaemon(tmp_path / "podkit.sock")
    yield d
    d.close()


def _cli(d: _DyingDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PODKIT_HOST=f"unix://{d.path}")
    return subprocess.run([str(BIN / "podkit"), *args], capture_output=True, text=True, timeout=60, env=env)


def _assert_lost(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("Error: lost the connection to podkitd"), r.stderr
    assert r.returncode == 125, (r.returncode, r.stderr)


@pytest.mark.parametrize("mode", ["close", "reset", "truncated", "chunked"])
@pytest.mark.parametrize(
    "args",
    [
        ("ps", "-a"),
        ("images",),
        ("rm", "-f", "a", "b"),
        ("volume", "ls"),
        ("inspect", "x"),
        ("events",),
        ("run", "--rm", "busybox", "true"),
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_every_command_reports_a_lost_connection(
    dying: _DyingDaemon, mode: str, args: tuple[str, ...]
) -> None:
    dying.mode = mode
    _assert_lost(_cli(dying, *args))


def test_an_upload_cut_off_mid_body(dying: _DyingDaemon, tmp_path: Path) -> None:
    big = tmp_path / "big.tar"
    big.write_bytes(b"\0" * (8 << 20))  # far more than the socket buffers hold
    dying.mode = "upload"
    _assert_lost(_cli(dying, "load", "-i", str(big)))
