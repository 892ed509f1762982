"""Raw HTTP to podkitd's unix socket: requests the SDK would never send."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 20.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def call(
    sock: str,
    method: str,
    url: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """(status, body) of one request; a dict or list body is sent as JSON."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    conn = UnixHTTPConnection(sock, timeout)
    try:
        h = {"Host": "podkitd", **(headers or {})}
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, url, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def error_message(payload: bytes) -> str:
    """The message of a JSON error body (the whole body when it is not one)."""
    try:
        d = json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")
    err = d.get("error") if isinstance(d, dict) else None
    return str(err.get("message", err)) if isinstance(err, dict) else str(d)


def send_request(
    sock: str, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> socket.socket:
    """The connected socket after one request was sent (body whole, Content-Length set):
    the test reads the answer itself, or closes the socket to play a client that leaves."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    h = {"Host": "podkitd", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    s.sendall(head.encode() + body)
    return s


def read_until(s: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    """What the socket sends up to and including ``marker`` (AssertionError at EOF)."""
    got = b""
    while marker not in got:
        chunk = s.recv(65536)
        assert chunk, f"connection closed before {marker!r}: {got[-500:]!r}"
        got += chunk
        assert len(got) < limit, "no marker in the first MiB"
    return got
