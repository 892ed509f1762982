"""Bounded inputs (issue 10, item 5): a JSON body over its route's limit is a 413 with a
JSON error, read no further; labels and annotations are bounded in size.

Before, `client_max_size` was 1 TiB: a 200 MB label went into metadata.db and came
back with every list.
"""

from __future__ import annotations

import json
import socket

import pytest

from podkit import errors
from podkit.limits import JSON_BODY_MAX, LABELS_TOTAL_MAX
from tests.helpers import Daemon
from tests.rawhttp import call, error_message

_BIG = "x" * (JSON_BODY_MAX + 1)  # over the default limit of a JSON body
_LABEL = "y" * (LABELS_TOTAL_MAX + 1)  # within the create route's body, over the label bound


def _chunked(daemon: Daemon, url: str, payload: bytes) -> tuple[int, bytes]:
    """POST with no Content-Length: the daemon must count as the body comes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(daemon.socket))
        s.sendall(
            f"POST {url} HTTP/1.1\r\nHost: podkitd\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        try:
            for i in range(0, len(payload), 65536):
                part = payload[i : i + 65536]
                s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading: the answer is already there
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(head.split()[1]), body


def test_a_body_over_the_limit_is_413_and_nothing_is_made(daemon: Daemon) -> None:
    sock = str(daemon.socket)
    status, payload = call(sock, "POST", "/v1/volumes", {"name": "big", "labels": {"a": _BIG}})
    assert status == 413, (status, payload[:200])
    assert json.loads(payload)["error"]["code"] == "too_large"
    assert "at most" in error_message(payload)

    status, payload = _chunked(
        daemon, "/v1/networks", json.dumps({"name": "big", "labels": {"a": _BIG}}).encode()
    )
    assert status == 413, (status, payload[:200])

    # the Docker API's JSON bodies are bounded too
    status, payload = call(
        str(daemon.state / "docker.sock"),
        "POST",
        "/containers/create",
        {"Image": "x", "Labels": {"a": "z" * (9 << 20)}},
    )
    assert status == 413, (status, payload[:200])

    # the SDK reports the daemon's answer, though the daemon stopped reading the upload
    c = daemon.client()
    with pytest.raises(errors.TooLarge, match="at most"):
        c.volumes.create("big2", labels={"a": _BIG})
    assert call(sock, "GET", "/_ping")[0] == 200
    assert not [v for v in c.volumes.list() if v.name.startswith("big")]
    assert not [n for n in c.networks.list() if n.name.startswith("big")]


_LABEL_CASES = [
    ("volume", "/v1/volumes", {"name": "lv", "labels": {"a": _LABEL}}),
    ("network-key", "/v1/networks", {"name": "ln", "labels": {"k" * 2000: "v"}}),
    ("container", "/v1/containers", {"image": "busybox", "labels": {"a": _LABEL}}),
    ("container-annotations", "/v1/containers", {"image": "busybox", "annotations": [f"a={_LABEL}"]}),
    ("pod", "/v1/pods", {"name": "lp", "labels": {"a": _LABEL}}),
    ("pod-annotations", "/v1/pods", {"name": "lp", "annotations": {"a": _LABEL}}),
]


def test_labels_and_annotations_are_bounded(daemon: Daemon) -> None:
    wrong = []
    try:
        for what, url, body in _LABEL_CASES:  # one daemon for all: each case is one request
            status, payload = call(str(daemon.socket), "POST", url, body)
            if status != 400 or "at most" not in error_message(payload):
                wrong.append((what, status, error_message(payload)[:200]))
    finally:  # what a failing run made (a pod outlives its daemon)
        c = daemon.client()
        for pod in c.pods.list():
            c.pods.remove(pod.id, force=True)
    assert not wrong, wrong
