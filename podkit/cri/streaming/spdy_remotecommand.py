"""remotecommand over SPDY: the streams a Kubernetes client opens, as a ``StreamIO``.

The client opens one stream per channel, named by its ``streamType`` header:
``error`` (always), ``stdin``/``stdout``/``stderr`` (as the request asked; no stderr
with a tty), ``resize`` (a tty, protocol v3 and later). We reply to each at once,
wait until all expected ones are there (``STREAM_CREATION_TIMEOUT``, kubelet's
default), then run the session. The error stream carries the outcome: v4 writes
the ``Status`` as JSON, success included; v1-v3 write a failure's message as text
and nothing on success.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from podkit.cri.streaming.remotecommand import Status, StreamIO
from podkit.cri.streaming.session import Session, Stream, StreamReset
from podkit.cri.streaming.spdy import RstStatus
from podkit.cri.streaming.tokens import StreamRequest

log = logging.getLogger(__name__)

STREAM_CREATION_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0  # after GOAWAY, how long the client gets to hang up first

V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
PROTOCOLS = (V4, V3, V2, V1)  # what we speak, newest first


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offered that we speak ("" when it offered none)."""
    if not offered:
        return ""
    for p in offered:
        if p in supported:
            return p
    return None


def expected_streams(req: StreamRequest, protocol: str) -> set[str]:
    want = {"error"}
    if req.stdin:
        want.add("stdin")
    if req.stdout:
        want.add("stdout")
    if req.stderr and not req.tty:
        want.add("stderr")
    if req.tty and protocol in (V3, V4):
        want.add("resize")
    return want


class JSONStreamDecoder:
    """Concatenated JSON values (Go's json.Encoder output) from a byte stream."""

    def __init__(self) -> None:
        self._buf = ""
        self._dec = json.JSONDecoder()

    def feed(self, data: bytes) -> None:
        self._buf += data.decode("utf-8", "replace")

    def next(self) -> object | None:
        s = self._buf.lstrip()
        if not s:
            self._buf = ""
            return None
        try:
            value, end = self._dec.raw_decode(s)
        except ValueError:
            if len(s) > 4096:  # not JSON and never will be: drop it
                self._buf = ""
            else:
                self._buf = s
            return None
        self._buf = s[end:]
        out: object = value
        return out


def parse_size(value: object) -> tuple[int, int] | None:
    """{"Width": w, "Height": h} as (height, width)."""
    if not isinstance(value, dict):
        return None
    w, h = value.get("Width"), value.get("Height")
    if isinstance(w, int) and isinstance(h, int):
        return h, w
    return None


class SpdyStreamIO(StreamIO):
    def __init__(
        self, req: StreamRequest, session: Session, streams: dict[str, Stream], protocol: str
    ) -> None:
        super().__init__(req)
        self.session = session
        self.streams = streams
        self.protocol = protocol
        self._sizes = JSONStreamDecoder()
        self._finished = False

    @property
    def has_stdin(self) -> bool:
        return "stdin" in self.streams

    async def read_stdin(self) -> bytes:
        st = self.streams.get("stdin")
        return await st.read() if st is not None else b""

    async def write_output(self, fd: int, data: bytes) -> None:
        st = self.streams.get("stdout" if fd == 1 else "stderr")
        if st is None:
            return
        try:
            await st.write(data)
        except StreamReset:
            # The client reset this stream: it does not want the output any more.
            self.streams.pop("stdout" if fd == 1 else "stderr", None)

    def _decoded(self) -> tuple[int, int] | None:
        while (value := self._sizes.next()) is not None:
            size = parse_size(value)
            if size is not None:
                return size
        return None

    def pending_resize(self) -> tuple[int, int] | None:
        st = self.streams.get("resize")
        if st is None or not st.buffered:
            return None
        # Everything buffered is here already: take it without waiting (no await).
        self._sizes.feed(bytes(st._buf))
        st._buf.clear()
        return self._decoded()

    async def next_resize(self) -> tuple[int, int] | None:
        st = self.streams.get("resize")
        if st is None:
            return None
        while True:
            size = self._decoded()
            if size is not None:
                return size
            data = await st.read()
            if not data:
                return None
            self._sizes.feed(data)

    async def finish(self, status: Status) -> None:
        if self._finished:
            return
        self._finished = True
        err = self.streams.get("error")
        with contextlib.suppress(ConnectionError):
            if err is not None:
                if self.protocol == V4:
                    await err.write(json.dumps(status, separators=(",", ":")).encode())
                elif status.get("status") != "Success":
                    await err.write(str(status.get("message", "")).encode())
            for st in self.streams.values():
                await st.close()
        await close_session(self.session)

    async def gone(self) -> None:
        await self.session.wait_closed()


async def close_session(session: Session) -> None:
    """GOAWAY, then give the client a moment to hang up first (its unread data survives)."""
    await session.goaway()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.wait_closed(), CLOSE_TIMEOUT)
    log.debug("SPDY session: the client hung up %.0f ms after GOAWAY", (loop.time() - t0) * 1000)
    session.close()


async def collect(session: Session, req: StreamRequest, protocol: str) -> SpdyStreamIO | None:
    """Accept the client's streams until the expected set is there; None if it never is."""
    want = expected_streams(req, protocol)
    streams: dict[str, Stream] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_CREATION_TIMEOUT
    while not want <= streams.keys():
        try:
            st = await asyncio.wait_for(session.accept(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            log.info(
                "streaming: %s: the client opened %s of the streams %s in time",
                req.kind,
                sorted(streams),
                sorted(want),
            )
            return None
        if st is None:
            return None
        kind = st.header("streamtype")
        if kind not in want or kind in streams:
            log.info("streaming: %s: unexpected stream %r refused", req.kind, kind)
            await st.reset(RstStatus.REFUSED_STREAM)
            continue
        await st.reply()
        streams[kind] = st
    return SpdyStreamIO(req, session, streams, protocol)


async def refuse_extra(session: Session) -> None:
    """Streams opened once the session runs are not part of it: refuse them, do not leave
    the client waiting for a reply."""
    while (st := await session.accept()) is not None:
        log.info("streaming: late stream %r refused", st.header("streamtype"))
        await st.reset(RstStatus.REFUSED_STREAM)
