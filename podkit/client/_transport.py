"""HTTP over the daemon's unix socket with the standard library only.

The CLI imports this on every call, so it must stay cheap: a small HTTP/1.1 client
on the interpreter's own socket type (http.client alone costs ~12 ms of imports:
email, ssl...; the socket module's wrapper ~3 ms: enums, selectors) and _json.py's
JSON (the json package imports re), with its own query-string encoding (urllib.parse
pulls in ipaddress). Responses come back as decoded JSON, as an iterator of JSON lines
for streams, or raw for downloads.
WebSocket upgrades (attach, exec) are ``_ws.py``'s.
"""

from __future__ import annotations

import _socket
import io
import os

from podkit import errors
from podkit.client._json import dumps as json_dumps
from podkit.client._json import loads as json_loads

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any, BinaryIO

DEFAULT_HOST = "unix:///run/podkit/podkit.sock"
API_PREFIX = "/v1"
# Request bodies read from a file go out in pieces of this size.
_FILE_CHUNK = 1 << 20
_MAX_LINE = 65536
_MAX_HEADERS = 100


class DaemonNotRunning(errors.Unavailable):
    code = "daemon_unavailable"


class ConnectionLost(errors.Unavailable):
    """podkitd went away mid-request: it died or was restarted (the CLI exits 125)."""

    code = "connection_lost"


# What a socket raises when its peer is gone. (A BrokenPipeError that escaped to the
# CLI would read as a closed stdout, `podkit ps | head`, and exit 0: never let one out.)
PEER_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def connection_lost(when: str) -> ConnectionLost:
    return ConnectionLost(f"lost the connection to podkitd {when}: did the daemon stop? (see its log)")


# What a query string or a path segment may carry as it is (RFC 3986's unreserved).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, plus: bool = False) -> str:
    """``text`` percent-encoded (UTF-8) but for the unreserved characters, as
    urllib.parse.quote(text, safe="") does; ``plus``: a space as "+" (quote_plus)."""
    data = text.encode()
    if all(c in _UNRESERVED for c in data):
        return text
    return "".join(chr(c) if c in _UNRESERVED else "+" if plus and c == 0x20 else f"%{c:02X}" for c in data)


def query_string(params: Mapping[str, str | list[str]]) -> str:
    """``params`` as an application/x-www-form-urlencoded query, a list as repeated
    keys: what urllib.parse.urlencode(params, doseq=True) makes of str values."""
    return "&".join(
        f"{quote(k, True)}={quote(x, True)}"
        for k, v in params.items()
        for x in ([v] if isinstance(v, str) else v)
    )


class _SocketFile(io.RawIOBase):
    """A socket read as a raw file (what socket.makefile wraps), to be buffered."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._sock.recv_into(b)


def socket_reader(sock: _socket.socket) -> BinaryIO:
    """A buffered reader of ``sock`` (closing it leaves the socket open)."""
    return io.BufferedReader(_SocketFile(sock))


def unix_socket(path: str, timeout: float | None) -> _socket.socket:
    """A stream socket connected to ``path`` (the connect's errors raised as they are)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        if timeout is not None:
            s.settimeout(timeout)
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return s


class _SocketReader:
    """The response's socket file, with a peer that went away raised as ConnectionLost."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fp.read(n)
        except PEER_GONE:
            raise connection_lost("mid-response") from None

    def read1(self, n: int = -1) -> bytes:
        try:
            return self._fp.read1(n)  # type: ignore[attr-defined,no-any-return]
        except PEER_GONE:
            raise connection_lost("mid-response") from None

    def readline(self, limit: int = -1) -> bytes:
        try:
            return self._fp.readline(limit)
        except PEER_GONE:
            raise connection_lost("mid-response") from None

    def close(self) -> None:
        self._fp.close()


class Response:
    """One HTTP/1.1 response: ``status``, ``reason``, ``headers`` and a body read with
    ``read`` / ``readline`` / iteration (Content-Length, chunked or close-delimited)."""

    def __init__(self, fp: BinaryIO, method: str) -> None:
        self.fp = _SocketReader(fp)
        while True:
            line = self.fp.readline(_MAX_LINE + 1)
            if not line:
                # what http.client calls RemoteDisconnected
                raise connection_lost("before it answered")
            parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise errors.Unavailable(f"bad response from podkitd: {line[:100]!r}")
            self.status = int(parts[1])
            self.reason = parts[2] if len(parts) > 2 else ""
            self.headers = self._read_headers()
            # 1xx interim responses (other than an upgrade) precede the real one.
            if not (100 <= self.status < 200) or self.status == 101:
                break
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.length: int | None = None
        if not self.chunked and "content-length" in self.headers:
            try:
                self.length = max(0, int(self.headers["content-length"]))
            except ValueError:
                self.length = None
        if self.status in (204, 304) or 100 <= self.status < 200 or method == "HEAD":
            self.length = 0
            self.chunked = False
        self._chunk_left = 0  # bytes left in the current chunk
        self._done = self.length == 0

    def _read_headers(self) -> dict[str, str]:
        hdrs: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = self.fp.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                return hdrs
            k, _, v = line.decode("latin-1").partition(":")
            k = k.strip().lower()
            v = v.strip()
            hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
        raise errors.Unavailable("bad response from podkitd: too many headers")

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def _next_chunk(self) -> bool:
        """Start the next chunk of a chunked body; False at the end of the body."""
        line = self.fp.readline(_MAX_LINE + 1)
        size = line.split(b";", 1)[0].strip()
        try:
            n = int(size, 16)
        except ValueError:
            raise connection_lost("mid-response") from None
        if n == 0:
            # trailers, up to the blank line
            while self.fp.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass
            self._done = True
            return False
        self._chunk_left = n
        return True

    def _read_exact(self, n: int) -> bytes:
        data = self.fp.read(n)
        if len(data) < n:
            self._done = True
            raise connection_lost("mid-response")
        return data

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all that is left without it); b"" at the end."""
        if self._done:
            return b""
        if amt is not None and amt < 0:
            amt = None
        if self.chunked:
            out = bytearray()
            while amt is None or len(out) < amt:
                if self._chunk_left == 0 and not self._next_chunk():
                    break
                want = self._chunk_left if amt is None else min(self._chunk_left, amt - len(out))
                out += self._read_exact(want)
                self._chunk_left -= want
                if self._chunk_left == 0:
                    self.fp.readline(_MAX_LINE + 1)  # the CRLF after the chunk
                if amt is not None and out:
                    break  # hand over what we have, as a socket read would
            return bytes(out)
        if self.length is not None:
            n = self.length if amt is None else min(amt, self.length)
            data = self._read_exact(n) if amt is None else self.fp.read(n)
            if amt is not None and not data and n:
                self._done = True
                raise connection_lost("mid-response")
            self.length -= len(data)
            self._done = self.length == 0
            return data
        # close-delimited
        data = self.fp.read() if amt is None else self.fp.read1(amt)
        if not data or amt is None:
            self._done = True
        return data

    def readline(self) -> bytes:
        """One line of the body (with its newline), b"" at the end."""
        if not self.chunked:
            if self._done:
                return b""
            if self.length is None:
                line = self.fp.readline()
                if not line:
                    self._done = True
                return line
            line = self.fp.readline(self.length)
            if not line or (not line.endswith(b"\n") and len(line) < self.length):
                self._done = True  # the body ended before its length: cut off
                raise connection_lost("mid-response")
            self.length -= len(line)
            self._done = self.length == 0
            return line
        out = bytearray()
        while not self._done:
            if self._chunk_left == 0 and not self._next_chunk():
                break
            part = self.fp.readline(self._chunk_left)
            if not part or (not part.endswith(b"\n") and len(part) < self._chunk_left):
                self._done = True  # the chunk ended before its size: cut off
                raise connection_lost("mid-response")
            self._chunk_left -= len(part)
            out += part
            if self._chunk_left == 0:
                self.fp.readline(_MAX_LINE + 1)
            if part.endswith(b"\n"):
                break
        return bytes(out)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        self._done = True
        self.fp.close()


class Connection:
    """One request's unix socket connection (closed by the caller when done)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: _socket.socket | None = None
        self.response: Response | None = None

    def connect(self) -> None:
        self.sock = unix_socket(self.path, self.timeout)

    def request(
        self,
        method: str,
        url: str,
        body: str | bytes | BinaryIO | Iterable[bytes] | None,
        headers: dict[str, str],
        while_waiting: Callable[[], object] | None = None,
    ) -> Response:
        """Send the request and read the response's head; ``while_waiting`` runs in
        between, while the daemon works on it."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        sock = self.sock
        hdrs = dict(headers)
        lower = {k.lower() for k in hdrs}
        chunks: Iterable[bytes | str] | None = None  # an iterable body may yield text too
        data = b""
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            if "content-length" not in lower:
                hdrs["Content-Length"] = str(len(data))
        elif body is not None:
            # a file or an iterable of bytes: length unknown, sent chunked
            chunks = _file_chunks(body) if hasattr(body, "read") else body  # type: ignore[arg-type]
            if "transfer-encoding" not in lower:
                hdrs["Transfer-Encoding"] = "chunked"
        elif method in ("POST", "PUT", "PATCH") and "content-length" not in lower:
            hdrs["Content-Length"] = "0"
        if "accept-encoding" not in lower:
            hdrs["Accept-Encoding"] = "identity"
        head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        try:
            # head and a small body in one write: one syscall, one packet for the daemon
            sock.sendall(head.encode("latin-1") + b"\r\n" + data)
            if chunks is not None:
                for chunk in chunks:
                    if isinstance(chunk, str):
                        chunk = chunk.encode()
                    if chunk:
                        sock.sendall(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
        except PEER_GONE:
            # The daemon may have answered before it stopped reading (a 413 for a body
            # over its limit, a 400 for a bad upload): that answer is what to report.
            try:
                self.response = Response(socket_reader(sock), method)
            except ConnectionLost:
                raise connection_lost("while sending the request") from None
            return self.response
        if while_waiting is not None:
            while_waiting()
        self.response = Response(socket_reader(sock), method)
        return self.response

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = fh.read(_FILE_CHUNK)
        if not chunk:
            return
        yield chunk


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
        self.socket_path = self.host[len("unix://") :]
        self.namespace = namespace or os.environ.get("PODKIT_NAMESPACE") or "default"
        self.timeout = timeout

    def _connect(self, timeout: float | None) -> Connection:
        return Connection(self.socket_path, timeout)

    def open(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, object] | None = None,
        json_body: object = None,
        body: bytes | BinaryIO | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = -1.0,
        while_waiting: Callable[[], object] | None = None,
    ) -> tuple[Connection, Response]:
        """Send a request and return the open connection and response (caller closes).
        ``while_waiting``: work of the caller's to do while the daemon answers."""
        url = API_PREFIX + path if not path.startswith("/_") and path != "/openapi.json" else path
        if params:
            clean = {k: _param(v) for k, v in params.items() if v is not None}
            if clean:
                url += "?" + query_string(clean)
        hdrs = {"Host": "podkitd", "X-Podkit-Namespace": self.namespace}
        if headers:
            hdrs.update(headers)
        payload: bytes | BinaryIO | Iterable[bytes] | None = body
        if json_body is not None:
            payload = json_dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._connect(self.timeout if timeout == -1.0 else timeout)
        try:
            resp = conn.request(method, url, payload, hdrs, while_waiting)
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
        except BaseException:
            conn.close()
            raise
        if resp.status >= 400:
            try:
                data = resp.read()
            finally:
                conn.close()
            try:
                err: object = json_loads(data)
            except ValueError:
                err = {
                    "error": {
                        "code": "http_error",
                        "message": data.decode(errors="replace") or f"HTTP {resp.status}",
                    }
                }
            raise errors.from_dict(err, resp.status)
        return conn, resp

    # The decoded JSON is Any, as json.loads gives it: the areas type what they return.
    def request(self, method: str, path: str, **kw: Any) -> Any:
        conn, resp = self.open(method, path, **kw)
        try:
            data = resp.read()
        finally:
            conn.close()
        if resp.status == 204 or not data:
            return None
        return json_loads(data)

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
                try:
                    item = json_loads(line)
                except ValueError:
                    raise errors.Unavailable(f"bad response from podkitd: {line[:100]!r}") from None
                if isinstance(item, dict) and set(item) == {"error"}:
                    raise errors.from_dict(item)
                yield item
        finally:
            conn.close()


def _param(v: object) -> str | list[str]:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):
        return [str(x) for x in v]
    if isinstance(v, dict):
        return json_dumps(v)
    return str(v)
