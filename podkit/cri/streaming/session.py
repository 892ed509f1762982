"""A SPDY/3.1 session over a byte stream: streams, replies, resets, pings, flow control.

``Session`` reads frames off the connection in one task (``run``) and hands each
stream the peer opens to ``accept``; the side that serves (kubelet's role) replies
to it and then reads and writes it. Writes from any task go out whole and in order
(one lock: the header compressor's state must follow the wire's order).

Flow control. SPDY/3.1 has a window per stream and one per session (64 KiB to
start; SETTINGS_INITIAL_WINDOW_SIZE changes the streams'). We announce what we have
consumed with WINDOW_UPDATE as the application reads. On the sending side the
windows are honoured once the peer has shown it keeps them (its first
WINDOW_UPDATE): the Kubernetes clients (Go's spdystream) never send one and ignore
ours, and holding data back from them would stall every stream after 64 KiB. What
we buffer for a stream is bounded all the same: past ``MAX_BUFFERED`` unread bytes
the session stops reading the connection until the application catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from podkit.cri.streaming.spdy import (
    DEFAULT_WINDOW,
    FLAG_FIN,
    DataFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAway,
    GoAwayStatus,
    Headers,
    HeadersFrame,
    Ping,
    ProtocolError,
    RstStatus,
    RstStream,
    Setting,
    Settings,
    SynReply,
    SynStream,
    WindowUpdate,
)

log = logging.getLogger(__name__)

MAX_STREAMS = 1000  # open streams per session; more are refused (RST_STREAM REFUSED_STREAM)
MAX_BUFFERED = 1 << 20  # unread bytes per stream before the session stops reading
CHUNK = 64 * 1024  # largest data frame we send

ReadFn = Callable[[], Awaitable[bytes]]  # next bytes from the connection; b"" at its end
WriteFn = Callable[[bytes], Awaitable[None]]


class StreamReset(ConnectionError):
    """The stream was reset (by either side) or its session ended."""


class Stream:
    """One SPDY stream: an ordered byte pipe each way, half-closable."""

    def __init__(self, session: Session, stream_id: int, headers: Headers, *, fin: bool = False) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers  # from SYN_STREAM (peer's streams) or what we sent
        self.reply_headers: Headers | None = None
        self._buf = bytearray()
        self._changed = asyncio.Event()
        self.remote_closed = fin  # FIN or RST received
        self.local_closed = False  # FIN sent
        self.reset_status: int | None = None
        self._replied: asyncio.Future[Headers] = asyncio.get_running_loop().create_future()
        self._replied_sent = False
        self.send_window = session.initial_send_window
        self._window = asyncio.Event()
        self._window.set()
        self._unacked = 0
        self._drained = asyncio.Event()
        self._drained.set()

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default

    def __repr__(self) -> str:
        return f"<spdy stream {self.id} {self.headers}>"

    # ------------------------------------------------------------ reading
    async def read(self, n: int = 256 * 1024) -> bytes:
        """Up to ``n`` bytes; b"" once the peer finished (or reset) the stream."""
        while not self._buf and not self.remote_closed:
            self._changed.clear()
            await self._changed.wait()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if len(self._buf) < MAX_BUFFERED:
            self._drained.set()
        if data:
            await self.session._consumed(self, len(data))
        return data

    async def read_all(self, limit: int = 1 << 28) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
            if len(out) > limit:
                raise ProtocolError(f"stream {self.id} sent more than {limit} bytes")
        return bytes(out)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # ------------------------------------------------------------ writing
    async def reply(self, headers: Headers | None = None, *, fin: bool = False) -> None:
        """Accept a peer's stream (SYN_REPLY); the peer drops data sent before it."""
        if self._replied_sent:
            return
        self._replied_sent = True
        if fin:
            self.local_closed = True
        await self.session.send(SynReply(self.id, headers or {}, FLAG_FIN if fin else 0))
        self.session._maybe_forget(self)

    async def wait_reply(self, timeout: float | None = None) -> Headers:
        """For streams we opened: the peer's SYN_REPLY headers (StreamReset if refused)."""
        return await asyncio.wait_for(asyncio.shield(self._replied), timeout)

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset_status is not None:
            raise StreamReset(f"stream {self.id} is closed for writing")
        view = memoryview(data)
        while view:
            n = min(len(view), CHUNK)
            if self.session.enforce_send_windows:
                n = min(n, await self._window_for(n))
            await self.session.send(DataFrame(self.id, bytes(view[:n])))
            view = view[n:]

    async def _window_for(self, want: int) -> int:
        s = self.session
        while True:
            if self.reset_status is not None or s.closed:
                raise StreamReset(f"stream {self.id} was reset")
            allowed = min(want, self.send_window, s.send_window)
            if allowed > 0:
                self.send_window -= allowed
                s.send_window -= allowed
                return allowed
            waiter = self._window if self.send_window <= 0 else s._window
            waiter.clear()
            await waiter.wait()

    async def close(self) -> None:
        """Finish our side (FIN); reading goes on until the peer finishes its side."""
        if self.local_closed or self.reset_status is not None or self.session.closed:
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session.send(DataFrame(self.id, b"", FLAG_FIN))
        self.session._maybe_forget(self)

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        if self.reset_status is not None:
            return
        self._on_reset(status)
        with contextlib.suppress(ConnectionError):
            await self.session.send(RstStream(self.id, status))

    # ------------------------------------------------------------ from the session
    def _on_data(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return  # data after FIN: the peer's error, and nothing to deliver it to
        self._buf += data
        if len(self._buf) >= MAX_BUFFERED:
            self._drained.clear()
        if fin:
            self.remote_closed = True
        self._changed.set()

    def _on_fin(self) -> None:
        self.remote_closed = True
        self._changed.set()

    def _on_reset(self, status: int, *, keep_data: bool = False) -> None:
        self.reset_status = status
        self.remote_closed = self.local_closed = True
        # What a reset stream held is dropped, and so is its hold on the session's
        # reader; a session that ended keeps what arrived before, for the reader.
        if not keep_data:
            self._buf.clear()
        self._drained.set()
        self._changed.set()
        self._window.set()
        if not self._replied.done():
            self._replied.set_exception(StreamReset(f"stream {self.id} refused ({RstStatus(status).name})"))
            self._replied.exception()  # retrieved: nobody may be waiting
        self.session._maybe_forget(self)


class Session:
    """Both ends use it: ``server=True`` for the side that serves (even stream ids)."""

    def __init__(
        self, read: ReadFn, write: WriteFn, *, server: bool, idle_timeout: float | None = None
    ) -> None:
        self._read = read
        self.idle_timeout = idle_timeout  # no frame for this long ends the session
        self._write = write
        self.server = server
        self._enc = FrameEncoder()
        self._dec = FrameDecoder()
        self._wlock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self._incoming: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._next_id = 2 if server else 1
        self._last_remote_id = 0
        self.initial_send_window = DEFAULT_WINDOW
        self.recv_window = DEFAULT_WINDOW
        self.send_window = DEFAULT_WINDOW
        self._window = asyncio.Event()
        self._window.set()
        self._unacked = 0
        self.enforce_send_windows = False  # see the module's docstring
        self.closed = False
        self.goaway_received = False
        self._done = asyncio.Event()
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._next_ping = 2 if server else 1

    # ------------------------------------------------------------ sending
    async def send(self, frame: Frame) -> None:
        if self.closed and not isinstance(frame, GoAway):
            raise ConnectionError("SPDY session is closed")
        async with self._wlock:
            await self._write(self._enc.encode(frame))

    async def open_stream(self, headers: Headers, *, fin: bool = False) -> Stream:
        if self.closed or self.goaway_received:
            raise ConnectionError("SPDY session is going away")
        async with self._wlock:  # ids must reach the wire in increasing order
            sid = self._next_id
            self._next_id += 2
            st = Stream(self, sid, headers)
            st.local_closed = fin
            self.streams[sid] = st
            await self._write(self._enc.encode(SynStream(sid, headers, flags=FLAG_FIN if fin else 0)))
        return st

    async def ping(self, timeout: float = 10.0) -> float:
        """Round trip time of a PING, in seconds."""
        pid = self._next_ping
        self._next_ping += 2
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[pid] = fut
        t0 = time.monotonic()
        try:
            await self.send(Ping(pid))
            await asyncio.wait_for(fut, timeout)
        finally:
            self._pings.pop(pid, None)
        return time.monotonic() - t0

    async def goaway(self, status: int = GoAwayStatus.OK) -> None:
        if self.closed:
            return
        with contextlib.suppress(ConnectionError):
            await self.send(GoAway(self._last_remote_id, status))

    # ------------------------------------------------------------ receiving
    async def accept(self) -> Stream | None:
        """The next stream the peer opens; None once the session ended."""
        if self.closed and self._incoming.empty():
            return None
        return await self._incoming.get()

    async def run(self) -> None:
        """Read and dispatch frames until the connection ends or breaks."""
        try:
            while not self.closed:
                try:
                    data = await asyncio.wait_for(self._read(), self.idle_timeout)
                except TimeoutError:
                    log.info("SPDY session: idle for %.0f s, closing it", self.idle_timeout)
                    await self.goaway()
                    break
                if not data:
                    break
                for frame in self._dec.feed(data):
                    await self._dispatch(frame)
                for st in list(self.streams.values()):
                    if not st._drained.is_set():
                        await st._drained.wait()  # back-pressure: the reader catches up first
        except ProtocolError as e:
            log.info("SPDY session: protocol error from the peer: %s", e)
            await self.goaway(e.status)
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.debug("SPDY session: connection lost: %s", e)
        finally:
            self._shut()

    async def wait_closed(self) -> None:
        await self._done.wait()

    def _shut(self) -> None:
        if self.closed and self._done.is_set():
            return
        self.closed = True
        for st in list(self.streams.values()):
            st._on_reset(RstStatus.CANCEL, keep_data=True)
        self.streams.clear()
        self._window.set()
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(ConnectionError("SPDY session ended"))
                fut.exception()
        self._incoming.put_nowait(None)
        self._done.set()

    def close(self) -> None:
        """End the session here (no GOAWAY: see ``goaway``); streams read as reset."""
        self._shut()

    async def _dispatch(self, f: Frame) -> None:
        if isinstance(f, DataFrame):
            st = self.streams.get(f.stream_id)
            if st is None:
                # A stream we forgot (reset or finished): tell the peer, do not fail.
                if f.stream_id > 0 and not f.fin:
                    await self.send(RstStream(f.stream_id, RstStatus.INVALID_STREAM))
                return
            st._on_data(f.data, f.fin)
            self._maybe_forget(st)
        elif isinstance(f, SynStream):
            await self._on_syn_stream(f)
        elif isinstance(f, SynReply):
            st = self.streams.get(f.stream_id)
            if st is not None and not st._replied.done():
                st.reply_headers = f.headers
                st._replied.set_result(f.headers)
                if f.fin:
                    st._on_fin()
                    self._maybe_forget(st)
        elif isinstance(f, HeadersFrame):
            st = self.streams.get(f.stream_id)
            if st is not None:
                for k, v in f.headers.items():
                    st.headers.setdefault(k, []).extend(v)
                if f.fin:
                    st._on_fin()
                    self._maybe_forget(st)
        elif isinstance(f, RstStream):
            st = self.streams.pop(f.stream_id, None)
            if st is not None:
                st._on_reset(f.status)
        elif isinstance(f, Settings):
            window = f.get(Setting.INITIAL_WINDOW_SIZE)
            if window is not None:
                delta = window - self.initial_send_window
                self.initial_send_window = window
                for st in self.streams.values():
                    st.send_window += delta
                    st._window.set()
        elif isinstance(f, Ping):
            mine = (f.id % 2 == 0) == self.server
            if mine:
                fut = self._pings.get(f.id)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            else:
                await self.send(f)  # echo the peer's ping
        elif isinstance(f, GoAway):
            self.goaway_received = True
            self._incoming.put_nowait(None)
        elif isinstance(f, WindowUpdate):
            self.enforce_send_windows = True
            if f.stream_id == 0:
                self.send_window += f.delta
                self._window.set()
            else:
                st = self.streams.get(f.stream_id)
                if st is not None:
                    st.send_window += f.delta
                    st._window.set()

    async def _on_syn_stream(self, f: SynStream) -> None:
        theirs = f.stream_id % 2 == (0 if not self.server else 1)
        if not theirs or f.stream_id <= self._last_remote_id:
            raise ProtocolError(f"SYN_STREAM with stream id {f.stream_id} out of order or parity")
        self._last_remote_id = f.stream_id
        if self.goaway_received or len(self.streams) >= MAX_STREAMS:
            await self.send(RstStream(f.stream_id, RstStatus.REFUSED_STREAM))
            return
        st = Stream(self, f.stream_id, f.headers, fin=f.fin)
        self.streams[f.stream_id] = st
        self._incoming.put_nowait(st)

    def _maybe_forget(self, st: Stream) -> None:
        """A stream closed both ways (or reset) leaves the table once fully read."""
        if st.remote_closed and st.local_closed and not st._buf:
            self.streams.pop(st.id, None)

    async def _consumed(self, st: Stream, n: int) -> None:
        """The application read ``n`` bytes: give the peer its window back in halves."""
        st._unacked += n
        self._unacked += n
        updates: list[Frame] = []
        if st._unacked >= DEFAULT_WINDOW // 2 and not st.remote_closed:
            updates.append(WindowUpdate(st.id, st._unacked))
            st._unacked = 0
        if self._unacked >= DEFAULT_WINDOW // 2:
            updates.append(WindowUpdate(0, self._unacked))
            self._unacked = 0
        self._maybe_forget(st)
        for u in updates:
            with contextlib.suppress(ConnectionError):
                await self.send(u)
