"""An export whose client never reads, or goes away unread, gives up and releases what
it holds: the container's root descriptor, a stopped container's mount, the tar
thread (podkit/daemon/leaving.py's stream_out, containers/commit.py's TarStream).

Before, a client that stayed connected without reading kept them forever: podkitd's
descriptors never came back down and the export never ended. The stall bound is
``[api] idle_timeout`` (2 s here); the disconnect case runs on the default (60 s), so
that only the client's leaving can end it in time.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.images import import_busybox
from tests.helpers import Daemon, wait_for
from tests.rawhttp import call

pytestmark = pytest.mark.root

BIG = 8 << 20  # more than the socket buffers and aiohttp's together: the writes stall


@pytest.fixture
def quick(workdir: Path) -> Iterator[Daemon]:
    (workdir / "q").mkdir()
    d = Daemon(workdir / "q", extra_config="[api]\nidle_timeout = 2\n").start()
    try:
        yield d
    finally:
        d.stop()
        d.drop_host_network()


def _fds(d: Daemon) -> set[str]:
    """What podkitd's descriptors name (sockets by inode, files by path)."""
    assert d.proc is not None
    out = set()
    for fd in os.listdir(f"/proc/{d.proc.pid}/fd"):
        try:
            out.add(f"{fd}:{os.readlink(f'/proc/{d.proc.pid}/fd/{fd}')}")
        except FileNotFoundError:
            pass
    return out


def _export(sock_path: Path, url: str) -> socket.socket:
    """An export asked for and none of it read."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
    s.connect(str(sock_path))
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: podkitd\r\n\r\n".encode())
    return s


def _containers(d: Daemon) -> tuple[str, str]:
    """A running container and a stopped one, each with a big file in its root."""
    c = d.client()
    script = f"head -c {BIG} /dev/urandom > /big && touch /ready && sleep 300"
    running = c.containers.run("busybox", ["sh", "-c", script])
    wait_for(
        lambda: d.cli("exec", running.id, "test", "-e", "/ready").returncode == 0,
        what="the big file to be written",
    )
    stopped = c.containers.run("busybox", ["sh", "-c", f"head -c {BIG} /dev/urandom > /big"])
    wait_for(lambda: c.containers.get(stopped.id).raw["state"] == "exited", what="the writer to end")
    return running.id, stopped.id


def _stalls_then_ends(d: Daemon, sock_path: Path, url: str, leave: bool, within: float) -> None:
    call(str(sock_path), "GET", "/_ping")  # the Docker API's app is made at its first client
    before = _fds(d)
    s = _export(sock_path, url)
    try:
        # the export is under way once podkitd holds more than the connection
        wait_for(lambda: len(_fds(d) - before) >= 2, what="the export to start")
        if leave:
            s.close()
        wait_for(lambda: not _fds(d) - before, within, what="podkitd to release the export's descriptors")
        if not leave:
            s.settimeout(10)
            while s.recv(1 << 16):  # what was sent, then the end: the daemon dropped it
                pass
    finally:
        s.close()


@pytest.mark.parametrize("api", ["podkit", "docker"])
def test_export_never_read_is_dropped(quick: Daemon, busybox_tarball: Path, api: str) -> None:
    import_busybox(quick, busybox_tarball)
    running, stopped = _containers(quick)
    try:
        for cid in (running, stopped):
            if api == "podkit":
                _stalls_then_ends(quick, quick.socket, f"/v1/containers/{cid}/export", False, 30)
            else:
                _stalls_then_ends(quick, quick.state / "docker.sock", f"/containers/{cid}/export", False, 30)
        assert "took nothing for 2 s; dropped" in quick.logs()
        quick.cli("rm", "-f", running, stopped, check=True)
        _no_mounts_left(quick)
    finally:
        quick.cli("rm", "-f", running, stopped)


def test_export_client_gone_unread_is_released(daemon: Daemon, busybox_image: str) -> None:
    running, stopped = _containers(daemon)
    try:
        for cid in (running, stopped):
            _stalls_then_ends(daemon, daemon.socket, f"/v1/containers/{cid}/export", True, 15)
        daemon.cli("rm", "-f", running, stopped, check=True)
        _no_mounts_left(daemon)
    finally:
        daemon.cli("rm", "-f", running, stopped)


def _no_mounts_left(d: Daemon) -> None:
    mounts = subprocess.run(["cat", "/proc/self/mountinfo"], capture_output=True, text=True).stdout
    assert str(d.root) not in mounts, [m for m in mounts.splitlines() if str(d.root) in m]


def test_an_export_never_iterated_releases_on_close() -> None:
    """A client gone before the headers: the stream is closed unread, and what the
    export holds is released all the same (an unstarted generator's close runs none of
    its code)."""
    import asyncio
    from collections.abc import AsyncGenerator

    from podkit.containers.commit import TarStream

    released: list[int] = []

    async def chunks() -> AsyncGenerator[bytes, None]:
        try:
            yield b"x"
        finally:
            released.append(2)

    async def go() -> None:
        await TarStream(chunks(), lambda: released.append(1)).aclose()
        read = TarStream(chunks(), lambda: released.append(3))
        async for _ in read:
            break
        await read.aclose()

    asyncio.run(go())
    assert released == [1, 2]
