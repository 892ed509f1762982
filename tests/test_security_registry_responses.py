"""A registry that answers nonsense (issue 10, item 7): every pull and inspect ends
in a clear error (a 4xx, or 502 for the registry's fault), never "internal error".

The registry is a stand-in on 127.0.0.1 (Debian's docker-registry serves only well
formed answers): a small HTTP server whose repositories each answer one kind of
malformed manifest.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers import Daemon
from tests.rawhttp import call

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_CONFIG = json.dumps(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
).encode()
_CONFIG_DIGEST = "sha256:" + hashlib.sha256(_CONFIG).hexdigest()
_GOOD_CFG = {"mediaType": OCI_CONFIG, "digest": _CONFIG_DIGEST, "size": len(_CONFIG)}


def _m(**kw: Any) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, **kw}).encode()


# repository -> (content type, manifest body)
MANIFESTS: dict[str, tuple[str, bytes]] = {
    "notjson": (OCI_MANIFEST, b"<html>500 Internal Server Error</html>"),
    "array": (OCI_MANIFEST, b"[1, 2, 3]"),
    "deep": (OCI_MANIFEST, b"[" * 200_000 + b"]" * 200_000),
    "deepobj": (OCI_MANIFEST, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    "layersstr": (OCI_MANIFEST, _m(config=_GOOD_CFG, layers="x")),
    "layerlist": (OCI_MANIFEST, _m(config=_GOOD_CFG, layers=[1, "a", None])),
    "badsize": (OCI_MANIFEST, _m(config=_GOOD_CFG, layers=[{"digest": "sha256:" + "a" * 64, "size": "big"}])),
    "baddigest": (OCI_MANIFEST, _m(config={**_GOOD_CFG, "digest": "md5:zz"}, layers=[])),
    "noconfig": (OCI_MANIFEST, _m(layers=[])),
    "configlist": (OCI_MANIFEST, _m(config=[1], layers=[])),
    "indexdict": (
        OCI_INDEX,
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {"a": 1}}).encode(),
    ),
    "indexitems": (
        OCI_INDEX,
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [1, "x"]}).encode(),
    ),
    "indexplat": (
        OCI_INDEX,
        json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{**_GOOD_CFG, "platform": "linux"}]}
        ).encode(),
    ),
    "nomediatype": ("text/plain", b"{}"),
    "status500": ("", b""),
    "configbad": (
        OCI_MANIFEST,
        _m(config={**_GOOD_CFG, "digest": "sha256:" + "b" * 64, "size": 5}, layers=[]),
    ),
}
BLOBS = {"sha256:" + "b" * 64: b"[[[[["}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, ctype: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        parts = self.path.split("/")
        if self.path.rstrip("/") == "/v2":
            return self._send(200, "application/json", b"{}", head)
        if len(parts) == 5 and parts[3] == "manifests" and parts[2] in MANIFESTS:
            ctype, body = MANIFESTS[parts[2]]
            if parts[2] == "status500":
                return self._send(500, "text/html", b"oops", head)
            return self._send(200, ctype, body, head)
        if len(parts) == 5 and parts[3] == "blobs":
            blob = BLOBS.get(parts[4]) or (_CONFIG if parts[4] == _CONFIG_DIGEST else None)
            if blob is not None:
                return self._send(200, "application/octet-stream", blob, head)
        return self._send(404, "application/json", b'{"errors":[{"code":"NOT_FOUND"}]}', head)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)


@pytest.fixture(scope="module")
def bad_registry() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _pull_error(d: Daemon, ref: str) -> tuple[int, dict[str, Any]]:
    status, body = call(str(d.socket), "POST", "/v1/images/pull", {"reference": ref}, timeout=60)
    lines = [json.loads(x) for x in body.splitlines() if x.strip()]
    errs = [x["error"] for x in lines if isinstance(x, dict) and "error" in x]
    return status, errs[-1] if errs else {"code": "none", "message": body[-300:].decode()}


def test_malformed_registry_answers_are_clear_errors(daemon: Daemon, bad_registry: str) -> None:
    wrong = []
    for repo in MANIFESTS:
        ref = f"{bad_registry}/{repo}:v1"
        status, err = _pull_error(daemon, ref)
        if status >= 500 and status != 502 or err.get("code") in ("internal", "none"):
            wrong.append(("pull", repo, status, err))
        status, body = call(str(daemon.socket), "GET", f"/v1/distribution/inspect?ref={ref}", timeout=60)
        # inspect shows what the registry holds: an odd manifest may be shown, never a 500
        if status >= 500 and status not in (502, 503):
            wrong.append(("inspect", repo, status, body[:200]))
    assert not wrong, "\n".join(map(str, wrong))
    assert call(str(daemon.socket), "GET", "/_ping")[0] == 200
