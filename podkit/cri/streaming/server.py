"""The streaming HTTP server: redeems tokens, upgrades to SPDY/3.1 or WebSocket, runs sessions.

Routes (GET or POST, as clients differ): ``/exec/<token>``, ``/attach/<token>``,
``/portforward/<token>``. An unknown, used or expired token is a 404 naming none
of them. A SPDY request must carry ``Connection: Upgrade`` and ``Upgrade: SPDY/3.1``
and offer a protocol in ``X-Stream-Protocol-Version`` (none offered means the
oldest, as kubelet assumes); a WebSocket request offers its channel protocol in
``Sec-WebSocket-Protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.cri.streaming import portforward as pf
from podkit.cri.streaming import remotecommand as rc
from podkit.cri.streaming import spdy_remotecommand as sr
from podkit.cri.streaming import websocket as wsp
from podkit.cri.streaming.raw import RawConnection, response_101
from podkit.cri.streaming.session import Session
from podkit.cri.streaming.tokens import StreamRequest, TokenCache
from podkit.errors import Conflict, InvalidArgument, PodkitError, Unavailable

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.daemon.services import Services

log = logging.getLogger(__name__)

# A SPDY connection with no frame for this long is closed (kubelet's default
# stream idle timeout; a forwarded port may well be quiet for minutes).
IDLE_TIMEOUT = 4 * 3600.0


class StreamingServer:
    """Exec/Attach/PortForward URLs for the CRI, and the server that answers them."""

    def __init__(
        self,
        services: Services,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = 60.0,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.services = services
        self.idle_timeout = idle_timeout
        self.address = address
        self.port = port
        self.tokens = TokenCache(token_ttl)
        self._runner: web.AppRunner | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self._gc: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ life cycle
    async def start(self) -> None:
        app = web.Application()
        for kind in ("exec", "attach", "portforward"):
            handler = self._handler(kind)
            app.router.add_get(f"/{kind}/{{token}}", handler)
            app.router.add_post(f"/{kind}/{{token}}", handler)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._gc = asyncio.create_task(self._gc_tokens())
        log.info("CRI streaming server on %s", self.base_url)

    async def stop(self) -> None:
        if self._gc is not None:
            self._gc.cancel()
            with contextlib.suppress(BaseException):
                await self._gc
            self._gc = None
        for t in list(self._sessions):
            t.cancel()
        for t in list(self._sessions):
            with contextlib.suppress(BaseException):
                await t
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _gc_tokens(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.tokens.ttl))
            self.tokens.gc()

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def open_connections(self) -> int:
        """HTTP connections the server holds (upgraded ones included)."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    # ------------------------------------------------------------ URLs (the CRI side)
    def exec_url(
        self,
        namespace: str,
        container_id: str,
        cmd: list[str],
        *,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> str:
        if not cmd:
            raise InvalidArgument("cmd: exec needs a command")
        _check_streams(tty, stdin, stdout, stderr)
        req = StreamRequest("exec", namespace, container_id, list(cmd), tty, stdin, stdout, stderr)
        return f"{self.base_url}/exec/{self.tokens.put(req)}"

    def attach_url(
        self, namespace: str, container_id: str, *, tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> str:
        _check_streams(tty, stdin, stdout, stderr)
        req = StreamRequest("attach", namespace, container_id, [], tty, stdin, stdout, stderr)
        return f"{self.base_url}/attach/{self.tokens.put(req)}"

    def port_forward_url(self, namespace: str, pod_id: str, ports: list[int]) -> str:
        for p in ports:
            if not 0 < int(p) < 65536:
                raise InvalidArgument(f"port: {p} is not a port number (1-65535)")
        req = StreamRequest("portforward", namespace, pod_id, ports=[int(p) for p in ports])
        return f"{self.base_url}/portforward/{self.tokens.put(req)}"

    # ------------------------------------------------------------ HTTP
    def _handler(self, kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            req = self.tokens.take(request.match_info["token"])
            if req is None or req.kind != kind:
                return web.Response(status=404, text="unknown, used or expired streaming token\n")
            task = asyncio.current_task()
            assert task is not None
            self._sessions.add(task)
            try:
                if wsp.is_websocket(request):
                    return await self._websocket(request, req)
                return await self._spdy(request, req)
            finally:
                self._sessions.discard(task)

        return handle

    def _containers(self) -> ContainerService:
        svc = self.services.containers
        if svc is None:
            raise Unavailable("the container service is not available")
        return svc

    def _netns(self, req: StreamRequest) -> pf.NetnsResolver:
        def resolve() -> str:
            pods = self.services.pods
            if pods is None:
                raise Unavailable("the pod service is not available")
            pod = pods.get(req.namespace, req.target)
            if pod.spec.network == "host":
                return ""
            if not pod.netns_path:
                raise Conflict(f"pod {pod.name} has no network namespace: is it running?")
            return str(pod.netns_path)

        return resolve

    async def _run(self, req: StreamRequest, io: rc.StreamIO) -> None:
        if req.kind == "exec":
            await rc.run_exec(self._containers(), io)
        else:
            await rc.run_attach(self._containers(), io)

    # ------------------------------------------------------------ SPDY
    async def _spdy(self, request: web.Request, req: StreamRequest) -> web.StreamResponse:
        connection = request.headers.get("Connection", "").lower()
        upgrade = request.headers.get("Upgrade", "")
        if "upgrade" not in connection or upgrade.lower() != "spdy/3.1":
            return web.Response(
                status=400,
                text="unable to upgrade: this URL needs Connection: Upgrade and Upgrade: SPDY/3.1\n",
            )
        offered = [
            p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", []) for p in v.split(",")
        ]
        offered = [p for p in offered if p]
        supported = (pf.PROTOCOL,) if req.kind == "portforward" else sr.PROTOCOLS
        protocol = sr.negotiate(offered, supported)
        if protocol is None:
            return web.Response(
                status=403,
                headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(supported)},
                text="unable to upgrade: unable to negotiate protocol: "
                f"client supports {offered}, server accepts {list(supported)}\n",
            )
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=400, text="connection closed\n")
        headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
        if protocol:
            headers["X-Stream-Protocol-Version"] = protocol
        assert isinstance(transport, asyncio.Transport)
        conn = RawConnection.take_over(transport, response_101(headers))
        session = Session(conn.read, conn.write, server=True, idle_timeout=self.idle_timeout)
        reader = asyncio.create_task(session.run())
        try:
            if req.kind == "portforward":
                await pf.SpdyPortForward(session, self._netns(req), req.target, req.ports).serve()
            else:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                io = await sr.collect(session, req, protocol or sr.V1)
                t1 = loop.time()
                if io is not None:
                    extra = asyncio.create_task(sr.refuse_extra(session))
                    try:
                        await self._run(req, io)
                    finally:
                        extra.cancel()
                else:
                    await sr.close_session(session)
                log.debug(
                    "streaming %s %s: streams in %.0f ms, session %.0f ms",
                    req.kind,
                    req.target[:12],
                    (t1 - t0) * 1000,
                    (loop.time() - t1) * 1000,
                )
        except PodkitError as e:
            log.info("streaming %s: %s", req.kind, e.message)
        finally:
            session.close()
            conn.close()
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            try:
                # close() waits for the buffer to flush; a client that stopped reading
                # would hold it (and this handler) forever.
                await asyncio.wait_for(asyncio.shield(conn.closed.wait()), sr.CLOSE_TIMEOUT)
            except TimeoutError:
                log.info("streaming %s: the client does not read; dropping its connection", req.kind)
                conn.abort()
        # aiohttp writes this to the closed transport, finds it closed, and moves on.
        return web.Response(status=101)

    # ------------------------------------------------------------ WebSocket
    async def _websocket(self, request: web.Request, req: StreamRequest) -> web.StreamResponse:
        protos = wsp.PORTFORWARD_PROTOCOLS if req.kind == "portforward" else wsp.REMOTECOMMAND_PROTOCOLS
        ws = web.WebSocketResponse(protocols=protos, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        sock = wsp.ChannelSocket(ws)
        if req.kind == "portforward":
            if not req.ports:
                await ws.close(message=b"port forwarding over WebSocket needs the ports in the request")
                return ws
            await wsp.serve_portforward(sock, self._netns(req), req.target, req.ports)
            return ws
        io = wsp.WebSocketStreamIO(req, sock)
        try:
            await self._run(req, io)
        finally:
            await io.close()
        return ws


def _check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout, or stderr must be set")
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be true")
