"""HTTP over the daemon's unix socket with the standard library only.

The CLI imports this on every call, so it must stay cheap: http.client and json,
nothing else. Responses come back as decoded JSON, as an iterator of JSON lines
for streams, or raw for downloads.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from podkit import errors

DEFAULT_HOST = "unix:///run/podkit/podkit.sock"
API_PREFIX = "/v1"


class DaemonNotRunning(errors.Unavailable):
    code = "daemon_unavailable"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def resolve_host(host: str | None) -> str:
    return host or os.environ.get("PODKIT_HOST") or DEFAULT_HOST


class Transport:
    def __init__(
        self, host: str | None = None, namespace: str | None = None, timeout: float | None = None
    ) -> None:
        self.host = resolve_host(host)
        if not self.host.startswith("unix://"):
            raise errors.InvalidArgument(
                f"unsupported host {self.host!r}: podkitd listens on unix:///path sockets"
            )
        self.socket_path = self.host[len("unix://"):]
        self.namespace = namespace or os.environ.get("PODKIT_NAMESPACE") or "default"
        self.timeout = timeout

    def _connect(self, timeout: float | None) -> _UnixConnection:
        return _UnixConnection(self.socket_path, timeout)

    def open(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        body: bytes | BinaryIO | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = -1.0,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request and return the open connection and response (caller closes)."""
        url = API_PREFIX + path if not path.startswith("/_") and path != "/openapi.json" else path
        if params:
            clean = {k: _param(v) for k, v in params.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean, doseq=True)
        hdrs = {"X-Podkit-Namespace": self.namespace, "Host": "podkitd"}
        if headers:
            hdrs.update(headers)
        payload: Any = body
        if json_body is not None:
            payload = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._connect(self.timeout if timeout == -1.0 else timeout)
        try:
            encode_chunked = payload is not None and not isinstance(payload, bytes | bytearray) \
                and not hasattr(payload, "read")
            if encode_chunked:
                hdrs["Transfer-Encoding"] = "chunked"
            conn.request(method, url, body=payload, headers=hdrs, encode_chunked=encode_chunked)
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            raise DaemonNotRunning(
                f"cannot connect to podkitd at {self.host}: is the daemon running? "
                "Start it with `podkitd &` (or `systemctl start podkitd`), or point "
                "--host / PODKIT_HOST at its socket"
            ) from None
        except PermissionError:
            conn.close()
            raise errors.Unauthorized(
                f"permission denied on {self.socket_path}: the podkit socket is root-only"
            ) from None
        if resp.status >= 400:
            data = resp.read()
            conn.close()
            try:
                payload = json.loads(data)
            except ValueError:
                payload = {"error": {"code": "http_error", "message": data.decode(errors="replace")
                                     or f"HTTP {resp.status}"}}
            raise errors.from_dict(payload, resp.status)
        return conn, resp

    def request(self, method: str, path: str, **kw: Any) -> Any:
        conn, resp = self.open(method, path, **kw)
        try:
            data = resp.read()
        finally:
            conn.close()
        if resp.status == 204 or not data:
            return None
        return json.loads(data)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def stream(self, method: str, path: str, **kw: Any) -> Iterator[Any]:
        """Iterate over a newline-delimited JSON response as it arrives.

        A line of the form {"error": {...}} mid-stream is raised as an error.
        """
        kw.setdefault("timeout", None)
        conn, resp = self.open(method, path, **kw)
        try:
            for line in resp:
                line = line.strip()
                if not line:
                    continue
                item = json.loads(line)
                if isinstance(item, dict) and set(item) == {"error"}:
                    raise errors.from_dict(item)
                yield item
        finally:
            conn.close()


def _param(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return [str(x) for x in v]
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)
