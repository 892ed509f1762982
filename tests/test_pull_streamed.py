"""A layer is applied while it downloads (issue 8, item 4): its files are in a
snapshot before the blob's last bytes arrive, the snapshot is committed only once
the blob's digest matched, and a blob that turns out corrupt leaves nothing.

The registry is Debian's docker-registry on 127.0.0.1; between it and podkitd a
proxy (the one simulated part: a link that stalls) holds back the tail of the
layer blob until the test lets it go, and can alter a byte of it.
"""

from __future__ import annotations

import http.server
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from tests.fixtures.registry import RegistryServer, build_layout, find_in_snapshots, skopeo_push
from tests.helpers import Daemon, wait_for

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("no_docker_config")]

_TAIL = 64 << 10  # bytes of the layer blob held back


class _HoldingLink:
    """Forwards to the registry; a blob (> 100 kB) is sent but for its last _TAIL bytes,
    which follow once ``release`` is set (``corrupt``: with their last byte flipped)."""

    def __init__(self, upstream: str, corrupt: bool = False) -> None:
        self.release = threading.Event()
        self.holding = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                req = urllib.request.Request(
                    f"http://{upstream}{self.path}",
                    method=method,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    up = urllib.request.urlopen(req, timeout=30)
                except urllib.error.HTTPError as e:
                    up = e
                body = up.read() if method == "GET" else b""
                self.send_response(up.status if hasattr(up, "status") else up.code)
                for k in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate"):
                    if up.headers.get(k):
                        self.send_header(k, up.headers[k])
                self.send_header("Content-Length", up.headers.get("Content-Length") or str(len(body)))
                self.end_headers()
                if method != "GET":
                    return
                if "/blobs/sha256:" not in self.path or len(body) <= 100_000:
                    self.wfile.write(body)
                    return
                if corrupt:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.wfile.write(body[:-_TAIL])
                self.wfile.flush()
                outer.holding.set()
                outer.release.wait(60)  # bounded: a failing test must not hang the link
                self.wfile.write(body[-_TAIL:])

            def do_GET(self) -> None:  # noqa: N802
                self._forward("GET")

            def do_HEAD(self) -> None:  # noqa: N802
                self._forward("HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


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
