"""The WebSocket channel protocols (k8s.io/apimachinery wsstream) for exec, attach, port-forward.

Every message is one channel's: the first byte is the channel number, the rest its
data; with the ``base64`` variants messages are text, the number an ASCII digit and
the data base64. remotecommand's channels are 0 stdin, 1 stdout, 2 stderr,
3 error, 4 resize; ``v5.channel.k8s.io`` adds the close message (channel 255, then
the number of the channel the client is done with, so stdin can end without the
socket). Port forwarding gives each requested port two channels (2i data, 2i+1
error), each opened by the server writing the port number, 16 bits little-endian.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import struct
from typing import Any

from aiohttp import WSMsgType, web

from podkit.cri.streaming import portforward as pf
from podkit.cri.streaming.remotecommand import Status, StreamIO
from podkit.cri.streaming.spdy_remotecommand import JSONStreamDecoder, parse_size
from podkit.cri.streaming.tokens import StreamRequest

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)
CLOSE_CHANNEL = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
CHANNEL = "channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
REMOTECOMMAND_PROTOCOLS = (V5, V4, V4_BASE64, CHANNEL, BASE64)
PORTFORWARD_PROTOCOLS = (V4, V4_BASE64)


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class ChannelSocket:
    """Channel framing over one aiohttp WebSocket (binary or base64)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self.base64 = "base64" in self.protocol
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if self.base64:
                await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    def decode(self, msg: Any) -> tuple[int, bytes] | None:
        """A received message as (channel, data); None for what is not one."""
        if msg.type == WSMsgType.BINARY and not self.base64 and msg.data:
            return msg.data[0], bytes(msg.data[1:])
        if msg.type == WSMsgType.TEXT and self.base64 and msg.data:
            ch = ord(msg.data[0]) - ord("0")
            try:
                return ch, base64.b64decode(msg.data[1:], validate=True)
            except ValueError:
                return None
        return None


class WebSocketStreamIO(StreamIO):
    def __init__(self, req: StreamRequest, sock: ChannelSocket) -> None:
        super().__init__(req)
        self.sock = sock
        self.v4 = sock.protocol in (V4, V4_BASE64, V5)
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._sizes: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()
        self._decoder = JSONStreamDecoder()
        self._reader = asyncio.create_task(self._read())
        self._finished = False

    async def _read(self) -> None:
        try:
            async for msg in self.sock.ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                item = self.sock.decode(msg)
                if item is None:
                    continue
                ch, data = item
                if ch == STDIN and data and self.req.stdin:
                    self._stdin.put_nowait(data)
                elif ch == RESIZE:
                    self._decoder.feed(data)
                    while (v := self._decoder.next()) is not None:
                        size = parse_size(v)
                        if size is not None:
                            self._sizes.put_nowait(size)
                elif ch == CLOSE_CHANNEL and self.sock.protocol == V5 and data[:1] == bytes([STDIN]):
                    self._stdin.put_nowait(b"")
        finally:
            self._stdin.put_nowait(b"")
            self._sizes.put_nowait(None)

    @property
    def has_stdin(self) -> bool:
        return self.req.stdin

    async def read_stdin(self) -> bytes:
        return await self._stdin.get()

    async def write_output(self, fd: int, data: bytes) -> None:
        if (fd == 1 and self.req.stdout) or (fd == 2 and self.req.stderr):
            await self.sock.send(STDOUT if fd == 1 else STDERR, data)

    def pending_resize(self) -> tuple[int, int] | None:
        size = None
        while not self._sizes.empty():
            size = self._sizes.get_nowait() or size
        return size

    async def next_resize(self) -> tuple[int, int] | None:
        return await self._sizes.get()

    async def finish(self, status: Status) -> None:
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            if self.v4:
                await self.sock.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
            elif status.get("status") != "Success":
                await self.sock.send(ERROR, str(status.get("message", "")).encode())
            await self.sock.ws.close()

    async def gone(self) -> None:
        await asyncio.shield(self._reader)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        try:
            await self.sock.ws.close()
        except Exception as e:
            log.warning("streaming: closing websocket %r failed: %s", self.sock.ws, e)


async def serve_portforward(sock: ChannelSocket, netns: pf.NetnsResolver, pod: str, ports: list[int]) -> None:
    """One TCP connection per requested port, for the life of the WebSocket."""
    inbound: list[asyncio.Queue[bytes]] = [asyncio.Queue() for _ in ports]
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await sock.send(2 * i, prefix)
        await sock.send(2 * i + 1, prefix)

    async def read() -> None:
        try:
            async for msg in sock.ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                item = sock.decode(msg)
                if item is not None and item[0] % 2 == 0 and item[0] // 2 < len(ports) and item[1]:
                    inbound[item[0] // 2].put_nowait(item[1])
        finally:
            for q in inbound:
                q.put_nowait(b"")

    async def forward(i: int, port: int) -> None:
        try:
            s = await pf.dial(netns(), port)
        except Exception as e:
            reason = e.message if hasattr(e, "message") else (getattr(e, "strerror", None) or str(e))
            msg = f"error forwarding port {port} to pod {pod}: {reason}"
            log.info("port-forward: %s", msg)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await sock.send(2 * i + 1, msg.encode())
            return

        async def send(data: bytes) -> None:
            await sock.send(2 * i, data)

        async def eof() -> None:
            return None

        try:
            await pf.pump_socket(s, inbound[i].get, send, eof)
        finally:
            s.close()

    reader = asyncio.create_task(read())
    try:
        forwards = [asyncio.create_task(forward(i, p)) for i, p in enumerate(ports)]

        async def all_done() -> None:
            await asyncio.gather(*forwards, return_exceptions=True)

        await asyncio.wait([reader, asyncio.create_task(all_done())], return_when=asyncio.FIRST_COMPLETED)
        for t in forwards:
            t.cancel()
        for t in forwards:
            with contextlib.suppress(BaseException):
                await t
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        try:
            await sock.ws.close()
        except Exception as e:
            log.warning("port-forward to pod %s: closing the websocket failed: %s", pod, e)
