"""A registry that drips (issue 10, item 8): a pull whose body stops making progress
fails with an error naming the stall, and a pull whose client left is cancelled at
once (the daemon hangs up on the registry), leaving no partial blob.

The registry is a stand-in on 127.0.0.1 (Debian's docker-registry serves at full
speed): manifest and config come whole, the one layer blob one byte every 0.2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Daemon, wait_for
from tests.rawhttp import call

pytestmark = pytest.mark.root

_LAYER_DIGEST = "sha256:" + "c" * 64
_CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}}
).encode()
_CONFIG_DIGEST = "sha256:" + hashlib.sha256(_CONFIG).hexdigest()
_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _CONFIG_DIGEST,
            "size": len(_CONFIG),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _LAYER_DIGEST, "size": 1 << 20}
        ],
    }
).encode()


class _Drip:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.blob_started = threading.Event()
        self.blob_ended = threading.Event()  # the daemon hung up on the drip
        drip = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, ctype: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/") == "/v2":
                    return self._send("application/json", b"{}")
                if "/manifests/" in self.path:
                    return self._send("application/vnd.oci.image.manifest.v1+json", _MANIFEST)
                if self.path.endswith(_CONFIG_DIGEST):
                    return self._send("application/octet-stream", _CONFIG)
                if self.path.endswith(_LAYER_DIGEST):
                    self.send_response(200)
                    self.send_header("Content-Length", str(1 << 20))
                    self.end_headers()
                    drip.blob_started.set()
                    try:
                        # A slow server, by design: a byte now and then, never the whole.
                        while not drip.stop.wait(0.2):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        drip.blob_ended.set()
                    return None
                self.send_response(404)
                self.end_headers()
                return None

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.srv.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def drip() -> Iterator[_Drip]:
    d = _Drip()
    yield d
    d.close()


def _daemon(workdir: Path, name: str, config: str) -> Daemon:
    (workdir / name).mkdir()
    return Daemon(workdir / name, extra_config=config).start()


def _stop(d: Daemon) -> None:
    d.stop()
    if os.path.exists(f"/sys/class/net/{d.bridge}"):
        subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)


def _ingest_empty(d: Daemon) -> bool:
    p = d.root / "content" / "ingest"
    return not p.exists() or not any(p.iterdir())


def test_a_stalled_pull_fails_naming_the_stall(workdir: Path, drip: _Drip) -> None:
    d = _daemon(workdir, "s", "[registries]\nstall_timeout = 2\n")
    try:
        t0 = time.monotonic()
        status, body = call(
            str(d.socket), "POST", "/v1/images/pull", {"reference": f"{drip.host}/slow:1"}, timeout=60
        )
        took = time.monotonic() - t0
        lines = [json.loads(x) for x in body.splitlines() if x.strip()]
        errs = [x["error"] for x in lines if "error" in x]
        assert errs and "stalled" in errs[-1]["message"], lines[-3:]
        assert took < 30, took  # a window of 2 s, not the drip's forever
        wait_for(lambda: _ingest_empty(d), what="the partial blob to be dropped")
    finally:
        _stop(d)


@pytest.mark.parametrize(
    "url, body",
    [("/v1/images/pull", {"reference": "HOST/slow:1"}), ("/v1/containers", {"image": "HOST/slow:1"})],
    ids=["pull", "implicit-pull-of-create"],
)
def test_a_pull_whose_client_left_is_cancelled(
    workdir: Path, drip: _Drip, url: str, body: dict[str, str]
) -> None:
    d = _daemon(workdir, "c", "")  # the default window (60 s) never fires here
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(str(d.socket))
        data = json.dumps(body).replace("HOST", drip.host).encode()
        s.sendall(
            f"POST {url} HTTP/1.1\r\nHost: podkitd\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        assert drip.blob_started.wait(20), "the pull never reached the layer"
        s.close()  # the client leaves (^C)
        assert drip.blob_ended.wait(10), "the daemon went on pulling for a client that left"
        wait_for(lambda: _ingest_empty(d), what="the partial blob to be dropped")
        assert call(str(d.socket), "GET", "/_ping")[0] == 200
        assert d.client().containers.list(all=True) == []
    finally:
        _stop(d)
