"""A layer is applied while it downloads (issue 8, item 4): its files are in a
snapshot before the blob's last bytes arrive, the snapshot is committed only once
the blob's digest matched, and a blob that turns out corrupt leaves nothing.

The registry is Debian's docker-registry on 127.0.0.1; between it and podkitd a
proxy (the one simulated part: a link that stalls) holds back the tail of the
layer blob until the test lets it go, and can alter a byte of it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from podkit import errors
from tests.fixtures.registry import (
    RegistryLink,
    RegistryServer,
    build_layout,
    find_in_snapshots,
    skopeo_push,
)
from tests.helpers import Daemon, wait_for

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_docker_config")]

_TAIL = 64 << 10  # bytes of the layer blob held back


class _HoldingLink(RegistryLink):
    """Sends a blob but for its last _TAIL bytes, which follow once ``release`` is set
    (``corrupt``: with their last byte flipped)."""

    def __init__(self, upstream: str, corrupt: bool = False) -> None:
        self.release = threading.Event()
        self.holding = threading.Event()
        self.corrupt = corrupt
        super().__init__(upstream)

    def send_blob(self, out: BinaryIO, body: bytes) -> None:
        if self.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        out.write(body[:-_TAIL])
        out.flush()
        self.holding.set()
        self.release.wait(60)  # bounded: a failing test must not hang the link
        out.write(body[-_TAIL:])

    def close(self) -> None:
        self.release.set()
        super().close()


@pytest.fixture
def image(registry: RegistryServer, workdir: Path) -> str:
    # a-first.txt leads the tar, so it is unpacked long before the blob's tail.
    layout = build_layout(workdir / "oci", [{"a-first.txt": b"streamed", "z-big.bin": os.urandom(2 << 20)}])
    skopeo_push(layout, registry, "streamed:1")
    return "streamed:1"


@pytest.fixture
def link(registry: RegistryServer, request: pytest.FixtureRequest) -> Iterator[_HoldingLink]:
    proxy = _HoldingLink(registry.host, corrupt=getattr(request, "param", False))
    yield proxy
    proxy.close()


def _pull_in_thread(daemon: Daemon, ref: str) -> tuple[threading.Thread, list[BaseException]]:
    failed: list[BaseException] = []

    def run() -> None:
        try:
            daemon.client().images.pull(ref)
        except BaseException as e:
            failed.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, failed


def _extractions(daemon: Daemon) -> list[str]:
    return [s for s in os.listdir(daemon.root / "snapshots") if "extract-" in s] + [
        str(p) for p in (daemon.root / "snapshots").glob("**/extract-*")
    ]


def test_layer_is_unpacked_before_its_download_ends(daemon: Daemon, link: _HoldingLink, image: str) -> None:
    t, failed = _pull_in_thread(daemon, f"{link.host}/{image}")
    try:
        assert link.holding.wait(30), "the pull never reached the layer blob"
        # The blob's tail has not been sent: what is unpacked came from the stream.
        wait_for(lambda: find_in_snapshots(daemon.root, "a-first.txt"), timeout=30, what="a-first.txt")
        assert t.is_alive()
        assert f"{link.host}/{image}" not in [i.name for i in daemon.client().images.list()]
    finally:
        link.release.set()
        t.join(60)
    assert not failed, failed
    assert f"{link.host}/{image}" in [i.name for i in daemon.client().images.list()]
    [path] = find_in_snapshots(daemon.root, "a-first.txt")
    assert path.read_bytes() == b"streamed"
    assert not _extractions(daemon)


@pytest.mark.parametrize("link", [True], indirect=True)
def test_corrupt_layer_leaves_no_snapshot(daemon: Daemon, link: _HoldingLink, image: str) -> None:
    t, failed = _pull_in_thread(daemon, f"{link.host}/{image}")
    try:
        assert link.holding.wait(30), "the pull never reached the layer blob"
        wait_for(lambda: find_in_snapshots(daemon.root, "a-first.txt"), timeout=30, what="a-first.txt")
    finally:
        link.release.set()
        t.join(60)
    assert not t.is_alive()
    assert len(failed) == 1 and isinstance(failed[0], errors.DigestMismatch), failed
    # The half-made snapshot went with the blob.
    assert not find_in_snapshots(daemon.root, "a-first.txt")
    assert not _extractions(daemon)
    assert f"{link.host}/{image}" not in [i.name for i in daemon.client().images.list()]
    ingest = daemon.root / "content" / "ingest"
    assert not ingest.exists() or not os.listdir(ingest)
