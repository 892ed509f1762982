"""The CRI streaming server end to end: exec, attach and port-forward over SPDY and
WebSocket, against real containers and pods.

The daemon is ``tests/cri_streaming_harness.py``: podkitd's services with a
``StreamingServer`` in the same loop and a test-only route that mints the URLs the
CRI's Exec/Attach/PortForward calls would return (the route stands in for the gRPC
front end; everything behind the URL is the real thing). The clients are
``tests/cri_streaming_clients.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit.cri.streaming.session import StreamReset
from tests.cri_streaming_clients import (
    ExecResult,
    SpdyConn,
    WSChannels,
    collect,
    open_remotecommand,
    read_until,
    spdy_connect,
    spdy_port_forward,
    spdy_run,
    ws_port_prefix,
)
from tests.fixtures.images import import_busybox
from tests.helpers import REPO, Daemon, wait_for
from tests.leaks import children_of, processes_mentioning, unmount_all_under

pytestmark = pytest.mark.root  # real daemons, containers and pods (tests/conftest.py tiers)


class StreamingDaemon(Daemon):
    """podkitd's services plus the streaming server (tests/cri_streaming_harness.py)."""

    def __init__(self, base: Path, token_ttl: float = 60.0) -> None:
        super().__init__(base)
        self.token_ttl = token_ttl

    def start(self, timeout: float = 60.0) -> StreamingDaemon:
        logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cri_streaming_harness", "--config", str(self.config)]
            + ["--root", str(self.root), "--state", str(self.state), "--socket", str(self.socket)]
            + ["--log-level", "debug"],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
            env=dict(os.environ, PODKIT_TEST_TOKEN_TTL=str(self.token_ttl)),
        )
        logf.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"harness exited early:\n{self.log.read_text()[-4000:]}")
            try:
                return self.socket.exists() and self.client().ping()
            except Exception:
                return False

        wait_for(up, timeout, what="the streaming harness to answer")
        return self

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("localhost", timeout=30)
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.connect(str(self.socket))
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            conn.close()

    def url(self, kind: str, target: str, **kw: Any) -> str:
        status, out = self._call("POST", "/_test/streaming/url", {"kind": kind, "id": target, **kw})
        assert status == 200, out
        return str(out["url"])

    def url_error(self, kind: str, target: str, **kw: Any) -> tuple[int, str]:
        status, out = self._call("POST", "/_test/streaming/url", {"kind": kind, "id": target, **kw})
        return status, str(out.get("error"))

    def streaming_state(self) -> dict[str, int]:
        return dict(self._call("GET", "/_test/streaming/state")[1])


@contextlib.contextmanager
def _streaming_daemon(token_ttl: float = 60.0, tarball: Path | None = None) -> Iterator[StreamingDaemon]:
    """A harness daemon in a private directory; everything it made is checked gone after."""
    base = Path(tempfile.mkdtemp(prefix="podkit-stream-test-", dir="/var/tmp"))
    (base / "d").mkdir()
    d = StreamingDaemon(base / "d", token_ttl=token_ttl)
    try:
        d.start()
        if tarball is not None:
            import_busybox(d, tarball)
        yield d
    finally:
        _remove_all(d)
        d.stop()
        if os.environ.get("PODKIT_TEST_KEEP_LOG"):
            Path(os.environ["PODKIT_TEST_KEEP_LOG"]).write_text(d.logs())
        if os.path.exists(f"/sys/class/net/{d.bridge}"):
            subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
        from tests.fixtures.network import scrub_subnet

        scrub_subnet(d.subnet)
        leaked = processes_mentioning(str(base))
        for pid, _ in leaked:
            for child in children_of(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = unmount_all_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not leaked, f"streaming tests left processes running: {leaked}"
        assert not mounts, f"streaming tests left mounts behind: {mounts}"


def _remove_all(d: StreamingDaemon) -> None:
    if d.proc is None:
        return
    for cid in d.cli("ps", "-aq").stdout.split():
        d.cli("rm", "-f", cid)
    for pid in d.cli("pod", "ls", "-q").stdout.split():
        d.cli("pod", "rm", "-f", pid)


@pytest.fixture(scope="module")
def _module_daemon(busybox_tarball: Path) -> Iterator[StreamingDaemon]:
    # One daemon for the module (starting one and importing busybox is most of a
    # test's time); each test removes what it made and must leave no session behind.
    with _streaming_daemon(tarball=busybox_tarball) as d:
        yield d


@pytest.fixture
def sd(_module_daemon: StreamingDaemon) -> Iterator[StreamingDaemon]:
    yield _module_daemon
    _remove_all(_module_daemon)
    wait_for(lambda: _idle(_module_daemon), 10, what="every streaming session to end")


def _run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _container(d: StreamingDaemon, *cmd: str, extra: tuple[str, ...] = ()) -> str:
    args = ("run", "-d", "--network", "none", *extra, "busybox", *(cmd or ("sleep", "3600")))
    return d.cli(*args, check=True).stdout.strip()


def _exec_pids(d: StreamingDaemon, cid: str) -> set[str]:
    """Processes in the container other than its init (pid 1)."""
    out = d.cli("exec", cid, "ps", "-o", "pid,args").stdout.splitlines()[1:]
    return {ln.split()[0] for ln in out if ln.split()[0] != "1" and "ps -o" not in ln}


def _idle(d: StreamingDaemon) -> bool:
    st = d.streaming_state()
    return st["sessions"] == 0 and st["connections"] == 0


# ---------------------------------------------------------------- exec


def test_exec_stdout_stderr_and_exit_code(sd: StreamingDaemon) -> None:
    cid = _container(sd)
    url = sd.url("exec", cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"], stdout=True, stderr=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    r = _run(spdy_run(url))
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")
    assert r.exit_code == 3
    st = r.status
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["message"].startswith("command terminated with non-zero exit code")
    assert st["metadata"] == {}

    ok = _run(spdy_run(sd.url("exec", cid, cmd=["true"], stdout=True, stderr=True)))
    assert ok.status == {"metadata": {}, "status": "Success"}
    wait_for(lambda: _idle(sd), 10, what="sessions to end")


def test_exec_stdin_and_older_protocols(sd: StreamingDaemon) -> None:
    cid = _container(sd)
    data = b"".join(b"line %d\n" % i for i in range(20000))  # > several SPDY windows
    r = _run(spdy_run(sd.url("exec", cid, cmd=["cat"], stdin=True, stdout=True, stderr=True), stdin=data))
    assert r.stdout == data and r.exit_code == 0
    # v1-v3 report failures as text on the error stream and success as nothing.
    for proto in ("v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"):
        url = sd.url("exec", cid, cmd=["sh", "-c", "echo hi; exit 2"], stdout=True, stderr=True)
        r = _run(spdy_run(url, protocol=proto))
        assert r.stdout == b"hi\n", proto
        assert r.error.startswith(b"command terminated with non-zero exit code"), proto
        r = _run(spdy_run(sd.url("exec", cid, cmd=["true"], stdout=True), stderr=False, protocol=proto))
        assert r.error == b"", proto


def test_exec_tty_and_resize(sd: StreamingDaemon) -> None:
    cid = _container(sd)

    async def go() -> None:
        url = sd.url("exec", cid, cmd=["sh"], tty=True, stdin=True, stdout=True)
        conn = await open_remotecommand(url, stdin=True, stderr=False, tty=True)
        try:
            assert set(conn.streams) == {"error", "stdin", "stdout", "resize"}
            await conn.streams["resize"].write(b'{"Width":91,"Height":17}\n')
            # The size reaches the tty (the shell may start before it: ask until it shows).
            out = conn.streams["stdout"]
            seen = b""
            for _ in range(50):
                await conn.streams["stdin"].write(b"stty size\n")
                try:
                    seen = await asyncio.wait_for(read_until(out, b"17 91"), 0.5)
                    break
                except TimeoutError:
                    continue
            assert b"17 91" in seen
            await conn.streams["resize"].write(b'{"Width":120,"Height":40}')
            await conn.streams["stdin"].write(b"sleep 0.1; stty size; exit 5\n")
            rest = await collect(conn)
            assert b"40 120" in rest.stdout
            assert rest.exit_code == 5
        finally:
            await conn.close()

    _run(go())


def test_late_streams_are_refused(sd: StreamingDaemon) -> None:
    cid = _container(sd)

    async def go() -> None:
        url = sd.url("exec", cid, cmd=["sh", "-c", "read x; echo got $x"], stdin=True, stdout=True)
        conn = await open_remotecommand(url, stdin=True, stderr=False)
        try:
            late = await conn.session.open_stream({"streamtype": ["stderr"]})
            with pytest.raises(StreamReset, match="REFUSED_STREAM"):
                await late.wait_reply(10)
            await conn.streams["stdin"].write(b"it\n")
            r = await collect(conn)
            assert r.stdout == b"got it\n" and r.exit_code == 0
        finally:
            await conn.close()

    _run(go())


def test_websocket_attach(sd: StreamingDaemon) -> None:
    cid = _container(sd, "sh", "-c", "while true; do echo tick; sleep 0.2; done")

    async def go() -> None:
        ch = await WSChannels.connect(sd.url("attach", cid, stdout=True), ["v5.channel.k8s.io"])
        try:
            await asyncio.wait_for(_ws_until(ch, 1, b"tick\ntick\n"), 20)
        finally:
            await ch.close()

    _run(go())
    assert "running" in _state(sd, cid)


def test_exec_client_gone_kills_the_process(sd: StreamingDaemon) -> None:
    cid = _container(sd)
    before = _exec_pids(sd, cid)

    async def go() -> None:
        url = sd.url("exec", cid, cmd=["sh", "-c", "echo started; exec sleep 1000"], stdout=True)
        conn = await open_remotecommand(url, stderr=False)
        await read_until(conn.streams["stdout"], b"started")
        await conn.close()  # the client hangs up mid-command

    _run(go())
    wait_for(lambda: _exec_pids(sd, cid) == before, 20, what="the exec'd sleep to be killed")
    wait_for(lambda: _idle(sd), 10, what="the session to end")


def test_exec_in_missing_container_reports_on_the_error_stream(sd: StreamingDaemon) -> None:
    r = _run(spdy_run(sd.url("exec", "nosuchcontainer", cmd=["true"], stdout=True), stderr=False))
    assert r.status["status"] == "Failure" and r.status["reason"] == "InternalError"
    assert "nosuchcontainer" in r.status["message"]


# ---------------------------------------------------------------- attach


def _stdin_container(d: StreamingDaemon, stdin_once: bool) -> str:
    """A container reading its stdin, as the CRI makes one (open_stdin, stdin_once)."""
    body = {
        "image": "busybox",
        "cmd": ["sh", "-c", "echo ready; cat; echo done-after-eof"],
        "open_stdin": True,
        "stdin_once": stdin_once,
        "network": "none",
    }
    status, out = d._call("POST", "/v1/containers", body)
    assert status == 201, out
    cid = str(out["id"])
    d.cli("start", cid, check=True)
    wait_for(lambda: "ready" in d.cli("logs", cid).stdout, 20, what="the container to start")
    return cid


def _state(d: StreamingDaemon, cid: str) -> str:
    return d.cli("inspect", "-f", "{{.State}}", cid).stdout.strip() or d.cli("inspect", cid).stdout


def test_attach_stdin_once_closes_the_containers_stdin(sd: StreamingDaemon) -> None:
    cid = _stdin_container(sd, stdin_once=True)

    async def go() -> bytes:
        conn = await open_remotecommand(
            sd.url("attach", cid, stdin=True, stdout=True, stderr=True), stdin=True
        )
        try:
            await conn.streams["stdin"].write(b"hello attach\n")
            await read_until(conn.streams["stdout"], b"hello attach\n")
            await conn.streams["stdin"].close()
            # The container's stdin closes with ours: cat ends, the container exits,
            # and the attach ends with it, reporting success.
            r = await collect(conn)
            return r.stdout + r.error
        finally:
            await conn.close()

    rest = _run(go())
    assert b"done-after-eof" in rest and rest.endswith(b'{"metadata":{},"status":"Success"}')
    wait_for(lambda: "exited" in _state(sd, cid), 20, what="the container to exit")


def test_attach_without_stdin_once_leaves_stdin_open(sd: StreamingDaemon) -> None:
    cid = _stdin_container(sd, stdin_once=False)

    async def go(text: bytes) -> ExecResult:
        conn = await open_remotecommand(
            sd.url("attach", cid, stdin=True, stdout=True, stderr=True), stdin=True
        )
        try:
            await conn.streams["stdin"].write(text)
            await read_until(conn.streams["stdout"], text)
            await conn.streams["stdin"].close()
            return await collect(conn)  # the attach ends; the container does not
        finally:
            await conn.close()

    first = _run(go(b"one\n"))
    assert first.status["status"] == "Success" and b"done-after-eof" not in first.stdout
    assert "running" in _state(sd, cid)
    second = _run(go(b"two\n"))  # stdin still open: a second attach still feeds cat
    assert second.status["status"] == "Success"
    wait_for(lambda: _idle(sd), 10, what="sessions to end")


def test_attach_output_and_error_for_stopped_container(sd: StreamingDaemon) -> None:
    cid = _container(sd, "sh", "-c", "while true; do echo tick; sleep 0.2; done")

    async def go() -> None:
        conn = await open_remotecommand(sd.url("attach", cid, stdout=True, stderr=True))
        try:
            await read_until(conn.streams["stdout"], b"tick\n")
        finally:
            await conn.close()

    _run(go())
    sd.cli("rm", "-f", cid, check=True)
    r = _run(spdy_run(sd.url("attach", cid, stdout=True), stderr=False))
    assert r.status["status"] == "Failure" and "attaching" in r.status["message"]


# ---------------------------------------------------------------- tokens and upgrades


def test_tokens_are_one_time_and_bad_ones_are_404(sd: StreamingDaemon) -> None:
    cid = _container(sd)
    url = sd.url("exec", cid, cmd=["true"], stdout=True)
    assert _run(spdy_run(url, stderr=False)).exit_code == 0
    again = _run(spdy_connect(url, ["v4.channel.k8s.io"]))
    assert not isinstance(again, SpdyConn) and again.status == 404
    base = url.rsplit("/", 2)[0]
    for path in ("/exec/not-a-token", "/attach/" + url.rsplit("/", 1)[1], "/nothing"):
        r = _run(spdy_connect(base + path, ["v4.channel.k8s.io"]))
        assert not isinstance(r, SpdyConn) and r.status == 404, path
    # A token of one kind does not open another.
    url = sd.url("exec", cid, cmd=["true"], stdout=True)
    r = _run(spdy_connect(url.replace("/exec/", "/attach/"), ["v4.channel.k8s.io"]))
    assert not isinstance(r, SpdyConn) and r.status == 404
    assert sd.url_error("exec", cid, cmd=["true"], tty=True, stderr=True)[0] == 400
    assert sd.url_error("exec", cid, cmd=["true"])[0] == 400


def test_upgrade_and_protocol_negotiation(sd: StreamingDaemon) -> None:
    cid = _container(sd)
    r = _run(spdy_connect(sd.url("exec", cid, cmd=["true"], stdout=True), ["v4.channel.k8s.io"], upgrade=""))
    assert not isinstance(r, SpdyConn) and r.status == 400 and b"upgrade" in r.body
    r = _run(spdy_connect(sd.url("exec", cid, cmd=["true"], stdout=True), ["v9.channel.k8s.io"]))
    assert not isinstance(r, SpdyConn) and r.status == 403
    assert "v4.channel.k8s.io" in r.headers["x-accepted-stream-protocol-versions"]

    async def chosen() -> str:
        url = sd.url("exec", cid, cmd=["true"], stdout=True)
        conn = await spdy_connect(url, ["v4.channel.k8s.io", "v3.channel.k8s.io"])
        assert isinstance(conn, SpdyConn)
        await conn.close()
        return conn.protocol

    assert _run(chosen()) == "v4.channel.k8s.io"
    # No protocol offered: the oldest (channel.k8s.io), as kubelet assumes; its
    # error stream stays empty on success.
    r = _run(spdy_run(sd.url("exec", cid, cmd=["echo", "v1"], stdout=True), stderr=False, protocol=""))
    assert r.stdout == b"v1\n" and r.error == b""


def test_tokens_expire() -> None:
    with _streaming_daemon(token_ttl=0.5) as d:
        url = d.url("exec", "anything", cmd=["true"], stdout=True)
        assert d.streaming_state()["tokens"] == 1
        wait_for(lambda: d.streaming_state()["tokens"] == 0, 10, what="the token to be collected")
        r = _run(spdy_connect(url, ["v4.channel.k8s.io"]))
        assert not isinstance(r, SpdyConn) and r.status == 404


# ---------------------------------------------------------------- WebSocket


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"])
def test_websocket_exec(sd: StreamingDaemon, protocol: str) -> None:
    cid = _container(sd)

    async def go() -> dict[int, bytes]:
        url = sd.url(
            "exec", cid, cmd=["sh", "-c", "cat; echo err >&2; exit 4"], stdin=True, stdout=True, stderr=True
        )
        ch = await WSChannels.connect(url, [protocol])
        try:
            assert ch.protocol == protocol
            await ch.send(0, b"from stdin\n")
            if protocol.startswith("v5"):
                await ch.send(255, b"\x00")  # v5: close stdin
                return await ch.read_all()
            # v4 cannot close stdin alone: read what came, then hang up.
            await asyncio.wait_for(_ws_until(ch, 1, b"from stdin\n"), 20)
            return {1: bytes(ch.data[1])}
        finally:
            await ch.close()

    got = _run(go())
    assert got[1] == b"from stdin\n"
    if protocol.startswith("v5"):
        assert got[2] == b"err\n"
        status = json.loads(got[3])
        assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "4"
    wait_for(lambda: _idle(sd), 10, what="sessions to end")


async def _ws_until(ch: WSChannels, channel: int, needle: bytes) -> None:
    import aiohttp

    async for msg in ch.ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            ch.data.setdefault(msg.data[0], bytearray()).extend(msg.data[1:])
        elif msg.type == aiohttp.WSMsgType.TEXT:
            import base64

            ch.data.setdefault(int(msg.data[0]), bytearray()).extend(base64.b64decode(msg.data[1:]))
        if needle in ch.data.get(channel, b""):
            return


def test_websocket_exec_tty_resize(sd: StreamingDaemon) -> None:
    cid = _container(sd)

    async def go() -> dict[int, bytes]:
        url = sd.url("exec", cid, cmd=["sh", "-c", "sleep 0.3; stty size"], tty=True, stdout=True)
        ch = await WSChannels.connect(url, ["v5.channel.k8s.io"])
        try:
            await ch.send(4, b'{"Width":77,"Height":11}')
            return await ch.read_all()
        finally:
            await ch.close()

    got = _run(go())
    assert b"11 77" in got[1]
    assert json.loads(got[3])["status"] == "Success"


# ---------------------------------------------------------------- port forward


def _pod_with_server(d: StreamingDaemon, port: int) -> str:
    pod = d.cli("pod", "create", "--name", "pf", "--network", "none", check=True).stdout.strip()
    # A tiny HTTP server bound to the pod's own localhost: reachable only from inside.
    d.cli("run", "-d", "--pod", pod, "busybox", "sh", "-c",
          f"mkdir -p /w && echo pod-page > /w/index.html && exec httpd -f -p 127.0.0.1:{port} -h /w",
          check=True)  # fmt: skip
    return pod


def test_port_forward_spdy(sd: StreamingDaemon) -> None:
    pod = _pod_with_server(sd, 8080)
    request = b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n"

    def get() -> tuple[bytes, bytes]:
        return _run(spdy_port_forward(sd.url("portforward", pod, ports=[8080]), 8080, request))  # type: ignore[no-any-return]

    data, err = wait_for(lambda: (r := get()) and b"pod-page" in r[0] and r, 30, what="httpd in the pod")
    assert data.startswith(b"HTTP/1.") and err == b""
    # Nothing listens on the host's 8080 side of this: the pod's localhost it was.
    data, err = _run(spdy_port_forward(sd.url("portforward", pod, ports=[]), 8081, request))
    assert data == b"" and b"error forwarding port 8081" in err
    # A port outside the request is refused.
    data, err = _run(spdy_port_forward(sd.url("portforward", pod, ports=[8080]), 9, request))
    assert b"not requested" in err

    async def two_on_one() -> list[bytes]:
        conn = await spdy_connect(sd.url("portforward", pod, ports=[]), ["portforward.k8s.io"])
        assert isinstance(conn, SpdyConn)
        try:
            from tests.cri_streaming_clients import forward_once

            res = await asyncio.gather(*(forward_once(conn, 8080, request, str(i)) for i in range(3)))
            return [r[0] for r in res]
        finally:
            await conn.close()

    assert all(b"pod-page" in body for body in _run(two_on_one()))

    # Every forwarded connection was closed on podkit's side too: nothing lingers in
    # the pod's netns (TIME_WAIT is the closed connection's, not a live socket).
    def live_sockets() -> list[str]:
        r = sd.cli("exec", ctr, "netstat", "-tn")
        assert r.returncode == 0 and "Proto" in r.stdout, r.stderr
        out = r.stdout.splitlines()
        return [ln for ln in out if ":8080" in ln and ("ESTABLISHED" in ln or "CLOSE_WAIT" in ln)]

    ctr = sd.cli("ps", "-q", "--filter", f"pod={pod}").stdout.split()[0]
    wait_for(lambda: not live_sockets(), 20, what=lambda: f"forwarded sockets to close: {live_sockets()}")
    wait_for(lambda: _idle(sd), 10, what="sessions to end")


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_port_forward_websocket(sd: StreamingDaemon, protocol: str) -> None:
    pod = _pod_with_server(sd, 8080)

    async def go() -> dict[int, bytes]:
        ch = await WSChannels.connect(sd.url("portforward", pod, ports=[8080]), [protocol])
        assert ch.protocol == protocol
        try:
            await ch.send(0, b"GET /index.html HTTP/1.0\r\n\r\n")
            return await ch.read_all()
        finally:
            await ch.close()

    def ok() -> dict[int, bytes] | None:
        got = _run(go())
        return got if b"pod-page" in got.get(0, b"") else None

    got = wait_for(ok, 30, what="httpd in the pod over a WebSocket")
    assert got[0].startswith(ws_port_prefix(8080) + b"HTTP/1.")
    assert got[1] == ws_port_prefix(8080)


def test_attach_tty_resize(sd: StreamingDaemon) -> None:
    body = {"image": "busybox", "cmd": ["sh"], "tty": True, "open_stdin": True, "network": "none"}
    status, out = sd._call("POST", "/v1/containers", body)
    assert status == 201, out
    cid = str(out["id"])
    sd.cli("start", cid, check=True)

    async def go() -> None:
        conn = await open_remotecommand(
            sd.url("attach", cid, tty=True, stdin=True, stdout=True), stdin=True, stderr=False, tty=True
        )
        try:
            await conn.streams["resize"].write(b'{"Width":66,"Height":22}\n')
            for _ in range(50):  # the resize and the typing race: ask until it shows
                await conn.streams["stdin"].write(b"stty size\n")
                try:
                    await asyncio.wait_for(read_until(conn.streams["stdout"], b"22 66"), 0.5)
                    return
                except TimeoutError:
                    continue
            raise AssertionError("the attached tty never got its new size")
        finally:
            await conn.close()

    _run(go())
    assert "running" in _state(sd, cid)  # hanging up detaches; the shell lives on
    wait_for(lambda: _idle(sd), 10, what="the session to end")


def test_port_forward_host_network_pod(sd: StreamingDaemon) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    pod = sd.cli("pod", "create", "--name", "hostpod", "--network", "host", check=True).stdout.strip()
    sd.cli("run", "-d", "--pod", pod, "busybox", "sh", "-c",
           f"mkdir -p /w && echo host-page > /w/index.html && exec httpd -f -p 127.0.0.1:{port} -h /w",
           check=True)  # fmt: skip
    request = b"GET /index.html HTTP/1.0\r\n\r\n"

    def get() -> bytes:
        data, _ = _run(spdy_port_forward(sd.url("portforward", pod, ports=[port]), port, request))
        return data  # type: ignore[no-any-return]

    assert b"host-page" in wait_for(lambda: (b := get()) and b"host-page" in b and b, 30, what="httpd")


def test_daemon_stop_ends_sessions_and_kills_their_execs(busybox_tarball: Path) -> None:
    import threading
    import time

    with _streaming_daemon(tarball=busybox_tarball) as d:
        cid = _container(d)
        before = _exec_pids(d, cid)
        started = threading.Event()
        ended: list[bytes] = []

        async def client() -> None:
            url = d.url("exec", cid, cmd=["sh", "-c", "echo started; exec sleep 1000"], stdout=True)
            conn = await open_remotecommand(url, stderr=False)
            try:
                await read_until(conn.streams["stdout"], b"started")
                started.set()
                ended.append((await collect(conn)).error)  # returns when the daemon hangs up
            finally:
                await conn.close()

        t = threading.Thread(target=lambda: _run(client()), daemon=True)
        t.start()
        assert started.wait(30), "the exec never started"
        t0 = time.monotonic()
        d.stop()
        assert time.monotonic() - t0 < 15, "podkitd took too long to stop with a live session"
        t.join(30)
        assert ended == [b""]  # the connection ended without a status: the session was cut
        d.start()
        # The container outlived the daemon (as containers do); the exec'd sleep did not.
        assert _exec_pids(d, cid) == before


def test_daemon_stop_with_a_client_that_stopped_reading(busybox_tarball: Path) -> None:
    import threading
    import time

    with _streaming_daemon(tarball=busybox_tarball) as d:
        cid = _container(d)
        before = _exec_pids(d, cid)
        flooding = threading.Event()
        release = threading.Event()

        async def client() -> None:
            url = d.url("exec", cid, cmd=["cat", "/dev/zero"], stdout=True)
            conn = await open_remotecommand(url, stderr=False)
            try:
                await conn.streams["stdout"].read()  # one chunk, then never again
                flooding.set()
                while not release.is_set():  # hold the connection open, unread
                    await asyncio.sleep(0.1)
            finally:
                await conn.close()

        t = threading.Thread(target=lambda: _run(client(), timeout=120), daemon=True)
        t.start()
        assert flooding.wait(30), "the exec never produced output"
        t0 = time.monotonic()
        d.stop()
        took = time.monotonic() - t0
        release.set()
        t.join(30)
        assert took < 15, f"podkitd took {took:.1f} s to stop with a stuck client"
        d.start()
        assert _exec_pids(d, cid) == before  # the cat went with the session


def test_port_forward_websocket_two_ports_one_refused(sd: StreamingDaemon) -> None:
    pod = _pod_with_server(sd, 8080)

    async def go() -> dict[int, bytes]:
        ch = await WSChannels.connect(sd.url("portforward", pod, ports=[8080, 8089]), ["v4.channel.k8s.io"])
        try:
            await ch.send(0, b"GET /index.html HTTP/1.0\r\n\r\n")
            return await ch.read_all()
        finally:
            await ch.close()

    def ok() -> dict[int, bytes] | None:
        got = _run(go())
        return got if b"pod-page" in got.get(0, b"") else None

    got = wait_for(ok, 30, what="httpd in the pod over a WebSocket")
    # Port 8089's channels: 2 (data) has only its prefix, 3 (error) says why.
    assert got[2] == ws_port_prefix(8089)
    assert got[3].startswith(ws_port_prefix(8089) + b"error forwarding port 8089")
