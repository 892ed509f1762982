"""Test clients for the CRI streaming server: SPDY (as client-go's remotecommand and
portforward speak it) and WebSocket (as wsstream's channel protocols are framed).

The SPDY client drives podkit's own session code from the client side (its frames
are checked byte for byte in test_cri_streaming_spdy.py, and crictl, a Go client,
is the independent check); the WebSocket client is aiohttp's, with the channel
framing written here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from podkit.cri.streaming.session import Session, Stream


@dataclass
class HTTPReply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class SpdyConn:
    session: Session
    protocol: str
    writer: asyncio.StreamWriter
    reader_task: asyncio.Task[None]
    streams: dict[str, Stream] = field(default_factory=dict)

    async def close(self) -> None:
        self.session.close()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.reader_task.cancel()
        with contextlib.suppress(BaseException):
            await self.reader_task


async def _read_head(reader: asyncio.StreamReader) -> HTTPReply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return HTTPReply(status, headers)


async def spdy_connect(
    url: str,
    protocols: list[str],
    *,
    method: str = "POST",
    upgrade: str = "SPDY/3.1",
    connection: str = "Upgrade",
) -> SpdyConn | HTTPReply:
    """Upgrade to SPDY; the HTTP reply instead when the server refuses."""
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    lines = [f"{method} {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 0"]
    if connection:
        lines.append(f"Connection: {connection}")
    if upgrade:
        lines.append(f"Upgrade: {upgrade}")
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    reply = await _read_head(reader)
    if reply.status != 101:
        n = int(reply.headers.get("content-length", "0"))
        reply.body = await reader.readexactly(n) if n else b""
        writer.close()
        return reply

    async def read() -> bytes:
        try:
            return await reader.read(65536)
        except ConnectionError:
            return b""

    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    session = Session(read, write, server=False)
    task = asyncio.create_task(session.run())
    return SpdyConn(session, reply.headers.get("x-stream-protocol-version", ""), writer, task)


async def open_remotecommand(
    url: str,
    *,
    stdin: bool = False,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    protocol: str = "v4.channel.k8s.io",
) -> SpdyConn:
    conn = await spdy_connect(url, [protocol] if protocol else [])
    assert isinstance(conn, SpdyConn), f"upgrade refused: {conn}"
    kinds = ["error"] + [k for k, on in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)) if on]
    if tty and protocol in ("v4.channel.k8s.io", "v3.channel.k8s.io"):
        kinds.append("resize")
    for k in kinds:
        conn.streams[k] = await conn.session.open_stream({"streamtype": [k]})
    for st in conn.streams.values():
        await st.wait_reply(10)
    return conn


@dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    error: bytes

    @property
    def status(self) -> dict[str, Any]:
        return json.loads(self.error) if self.error else {}

    @property
    def exit_code(self) -> int:
        """As client-go reads it from a v4 Status."""
        st = self.status
        if not st or st.get("status") == "Success":
            return 0
        for c in st.get("details", {}).get("causes", []):
            if c.get("reason") == "ExitCode":
                return int(c["message"])
        return -1


async def collect(conn: SpdyConn) -> ExecResult:
    """Read stdout, stderr and error to their ends."""

    async def all_of(k: str) -> bytes:
        st = conn.streams.get(k)
        return await st.read_all() if st else b""

    out, err, error = await asyncio.gather(all_of("stdout"), all_of("stderr"), all_of("error"))
    return ExecResult(out, err, error)


async def spdy_run(
    url: str,
    *,
    stdin: bytes | None = None,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    size: tuple[int, int] | None = None,
    protocol: str = "v4.channel.k8s.io",
) -> ExecResult:
    conn = await open_remotecommand(
        url, stdin=stdin is not None, stdout=stdout, stderr=stderr, tty=tty, protocol=protocol
    )
    try:
        if size and "resize" in conn.streams:
            await conn.streams["resize"].write(json.dumps({"Width": size[0], "Height": size[1]}).encode())
        reading = asyncio.create_task(collect(conn))  # read while writing: no deadlock on big data
        if stdin is not None:
            await conn.streams["stdin"].write(stdin)
            await conn.streams["stdin"].close()
        return await reading
    finally:
        await conn.close()


async def read_until(st: Stream, needle: bytes, timeout: float = 20.0) -> bytes:
    """Read a stream until ``needle`` shows up (a wait on a condition, bounded)."""
    buf = bytearray()

    async def go() -> None:
        while needle not in buf:
            chunk = await st.read()
            if not chunk:
                raise AssertionError(f"stream ended before {needle!r}; got {bytes(buf)!r}")
            buf.extend(chunk)

    await asyncio.wait_for(go(), timeout)
    return bytes(buf)


# ---------------------------------------------------------------- port forward


async def spdy_port_forward(
    url: str, port: int, request: bytes, request_id: str = "0"
) -> tuple[bytes, bytes]:
    """One forwarded connection: send ``request``, half-close, read the reply; (data, error)."""
    conn = await spdy_connect(url, ["portforward.k8s.io"])
    assert isinstance(conn, SpdyConn), f"upgrade refused: {conn}"
    try:
        return await forward_once(conn, port, request, request_id)
    finally:
        await conn.close()


async def forward_once(conn: SpdyConn, port: int, request: bytes, request_id: str) -> tuple[bytes, bytes]:
    h = {"port": [str(port)], "requestid": [request_id]}
    err = await conn.session.open_stream({"streamtype": ["error"], **h})
    data = await conn.session.open_stream({"streamtype": ["data"], **h})
    await err.wait_reply(10)
    await data.wait_reply(10)
    await data.write(request)
    await data.close()
    body, error = await asyncio.gather(data.read_all(), err.read_all())
    return body, error


# ---------------------------------------------------------------- WebSocket


class WSChannels:
    """wsstream's channel framing over aiohttp's WebSocket client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession) -> None:
        self.ws = ws
        self.http = http
        self.protocol = ws.protocol or ""
        self.b64 = "base64" in self.protocol
        self.data: dict[int, bytearray] = {}

    @classmethod
    async def connect(cls, url: str, protocols: list[str]) -> WSChannels:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url.replace("http://", "ws://"), protocols=protocols)
        except BaseException:
            await http.close()
            raise
        return cls(ws, http)

    async def send(self, channel: int, data: bytes) -> None:
        if self.b64:
            await self.ws.send_str(str(channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def read_all(self, timeout: float = 30.0) -> dict[int, bytes]:
        """Every channel's data until the server closes the socket."""

        async def go() -> None:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    ch, payload = msg.data[0], msg.data[1:]
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    ch, payload = int(msg.data[0]), base64.b64decode(msg.data[1:])
                else:
                    break
                self.data.setdefault(ch, bytearray()).extend(payload)

        await asyncio.wait_for(go(), timeout)
        return {k: bytes(v) for k, v in self.data.items()}

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


def ws_port_prefix(port: int) -> bytes:
    return struct.pack("<H", port)
