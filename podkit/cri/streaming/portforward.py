"""Port forwarding into a pod: sockets made inside its network namespace.

``dial`` connects to ``127.0.0.1:<port>`` (then ``[::1]``) as seen from the pod:
a short-lived thread of its own joins the pod's netns (setns), creates the socket
there and ends; a socket keeps the namespace it was made in, so the event loop
connects and pumps it without ever leaving the host's namespace. (No pooled
thread is used: a pool would hand the joined namespace to unrelated work.)

Over SPDY (``portforward.k8s.io``) the client opens a *data* and an *error* stream
per forwarded connection, paired by the ``requestID`` header, the port in ``port``.
A failure to connect is written as text to the error stream, as kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable

from podkit.cri.streaming.session import Session, Stream
from podkit.cri.streaming.spdy import RstStatus
from podkit.cri.streaming.spdy_remotecommand import STREAM_CREATION_TIMEOUT, close_session
from podkit.errors import NotFound, PodkitError, Unavailable

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _socket_in_netns(netns: str, family: int) -> socket.socket:
    """A TCP socket created inside ``netns`` (a path to a netns file), in a thread of its own."""
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as e:  # handed to the caller
            result.append(e)
        # The thread ends here, and its namespace with it.

    t = threading.Thread(target=run, name="podkit-netns-dial", daemon=True)
    t.start()
    t.join()
    out = result[0] if result else OSError("netns thread failed")
    if isinstance(out, BaseException):
        raise out
    return out


async def dial(netns: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A connected, non-blocking socket to the pod's localhost ``port``."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        if netns:
            # Cheap (a thread that lives for one setns and one socket call) and
            # awaited off the loop, so a slow netns never stalls other sessions.
            sock = await asyncio.to_thread(_socket_in_netns, netns, family)
        else:
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
            return sock
        except (OSError, TimeoutError) as e:
            sock.close()
            last = e if isinstance(e, OSError) else OSError(f"timed out after {timeout:.0f}s")
    assert last is not None
    raise last


async def pump_socket(
    sock: socket.socket,
    recv: Callable[[], Awaitable[bytes]],
    send: Callable[[bytes], Awaitable[None]],
    send_eof: Callable[[], Awaitable[None]],
) -> None:
    """Copy between ``sock`` and a client stream both ways until both directions end."""
    loop = asyncio.get_running_loop()

    async def to_pod() -> None:
        while data := await recv():
            await loop.sock_sendall(sock, data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    async def from_pod() -> None:
        while True:
            try:
                data = await loop.sock_recv(sock, 65536)
            except OSError:
                data = b""
            if not data:
                break
            await send(data)
        await send_eof()

    up, down = asyncio.create_task(to_pod()), asyncio.create_task(from_pod())
    tasks = [up, down]
    try:
        # The pod closing its side ends the connection (the client then waits for the
        # error stream to close, its own side perhaps still open); the client
        # finishing its side only half-closes ours; a failure either way ends both.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if up in done and down not in done and up.exception() is None:
            await down
    except (ConnectionError, OSError) as e:
        log.debug("port-forward pump: %s", e)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


NetnsResolver = Callable[[], str]  # the pod's netns path ("" for the host's); raises PodkitError


class SpdyPortForward:
    """One client connection's forwarded ports over SPDY."""

    def __init__(self, session: Session, netns: NetnsResolver, pod: str, allowed: list[int]) -> None:
        self.session = session
        self.netns = netns
        self.pod = pod
        self.allowed = set(allowed)
        self._half: dict[str, tuple[Stream, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        reaper = asyncio.create_task(self._expire_halves())
        try:
            while (st := await self.session.accept()) is not None:
                await self._stream(st)
        finally:
            reaper.cancel()
            for t in list(self._tasks):
                t.cancel()
            for t in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await t
            for st, _ in self._half.values():
                await st.reset(RstStatus.CANCEL)
            self._half.clear()
            await close_session(self.session)

    def _request_id(self, st: Stream, kind: str) -> str:
        rid = st.header("requestid")
        if rid:
            return rid
        # Old clients send no requestID: their error stream comes first and the data
        # stream's id is the next odd one (kubelet pairs them the same way).
        return str(st.id if kind == "error" else st.id - 2)

    async def _stream(self, st: Stream) -> None:
        kind = st.header("streamtype")
        if kind not in ("data", "error"):
            log.info("port-forward: stream of unknown type %r refused", kind)
            await st.reset(RstStatus.PROTOCOL_ERROR)
            return
        await st.reply()
        rid = self._request_id(st, kind)
        other = self._half.pop(rid, None)
        if other is None:
            self._half[rid] = (st, asyncio.get_running_loop().time())
            return
        pair = {kind: st, other[0].header("streamtype"): other[0]}
        if set(pair) != {"data", "error"}:
            log.info("port-forward: request %s has two %s streams", rid, kind)
            for s in pair.values():
                await s.reset(RstStatus.PROTOCOL_ERROR)
            return
        task = asyncio.create_task(self._forward(pair["data"], pair["error"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_halves(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(STREAM_CREATION_TIMEOUT / 4)
            now = loop.time()
            for rid, (st, t0) in list(self._half.items()):
                if now - t0 > STREAM_CREATION_TIMEOUT:
                    del self._half[rid]
                    log.info("port-forward: request %s never got its second stream", rid)
                    await st.reset(RstStatus.CANCEL)

    async def _forward(self, data: Stream, error: Stream) -> None:
        port_s = data.header("port")
        try:
            try:
                port = int(port_s)
                if not 0 < port < 65536:
                    raise ValueError
            except ValueError:
                raise NotFound(f"invalid port {port_s!r}") from None
            if self.allowed and port not in self.allowed:
                raise NotFound(f"port {port} was not requested for this session")
            try:
                sock = await dial(self.netns(), port)
            except OSError as e:
                raise Unavailable(f"cannot connect to port {port}: {e.strerror or e}") from None
        except PodkitError as e:
            msg = f"error forwarding port {port_s} to pod {self.pod}: {e.message}"
            log.info("port-forward: %s", msg)
            with contextlib.suppress(ConnectionError):
                await error.write(msg.encode())
                await error.close()
                await data.close()
            return
        try:
            await pump_socket(sock, data.read, data.write, data.close)
        finally:
            sock.close()
            with contextlib.suppress(ConnectionError):
                await error.close()
                await data.close()
