"""Idle API connections are closed (issue 10, item 9).

600 clients that connected and sent nothing were kept forever, and a burst of them
overflowed the accept backlog of 128 so that a normal request failed. Now a
connection idle for `[api] idle_timeout` (default 60 s; 1 s here) is closed, whether
it never sent a whole request or lingers after its answer; streams are not idle; the
backlog is 1024.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit import errors
from tests.helpers import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def quick(workdir: Path) -> Iterator[Daemon]:
    (workdir / "q").mkdir()
    d = Daemon(workdir / "q", extra_config="[api]\nidle_timeout = 1\n").start()
    try:
        yield d
    finally:
        d.stop()
        if os.path.exists(f"/sys/class/net/{d.bridge}"):
            subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)


def _connect(d: Daemon, data: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(d.socket))
    if data:
        s.sendall(data)
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    """Whether the daemon closed it: all it sent is read and then EOF (10 s at most)."""
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return False
    return True


def test_idle_connections_are_closed_and_streams_are_not(quick: Daemon) -> None:
    events = _connect(quick, b"GET /v1/events HTTP/1.1\r\nHost: podkitd\r\n\r\n")
    silent = _connect(quick)
    partial = _connect(quick, b"GET /_ping HTTP/1.1\r\nHo")
    after = _connect(quick, b"GET /_ping HTTP/1.1\r\nHost: podkitd\r\n\r\n")
    try:
        assert _closed_by_peer(silent)
        assert _closed_by_peer(partial)
        assert _closed_by_peer(after)
        # The idle timeout has passed for the stream too: it is still there.
        quick.client().volumes.create("after-idle")
        events.settimeout(10)
        got = b""
        while b"after-idle" not in got:
            chunk = events.recv(65536)
            assert chunk, "the events stream was closed as if idle"
            got += chunk
    finally:
        for s in (events, silent, partial, after):
            s.close()
        with contextlib.suppress(errors.NotFound):  # made only if the idle part passed
            quick.client().volumes.remove("after-idle")


def test_a_burst_of_idle_clients_does_not_starve_a_request(quick: Daemon) -> None:
    out = subprocess.run(["ss", "-xlH", "src", str(quick.socket)], capture_output=True, text=True).stdout
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(out.split()[3]) == min(1024, somaxconn), out  # Send-Q of a listener: its backlog
    socks: list[socket.socket] = []
    try:
        for _ in range(600):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            with contextlib.suppress(BlockingIOError):
                s.connect(str(quick.socket))
        assert quick.client().ping()
        # and the daemon lets all of them go
        for s in socks:
            s.settimeout(10)
        assert all(_closed_by_peer(s) for s in socks)
    finally:
        for s in socks:
            s.close()
