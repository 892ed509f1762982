"""Where the Docker API socket goes ([docker] socket / enabled, --docker-socket), and
what it answers before any client library is involved (raw HTTP on the socket)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
from pathlib import Path

from podkit.daemon import config
from tests.helpers import Daemon


def _load(tmp_path: Path, text: str, **overrides: str) -> config.Config:
    f = tmp_path / "podkitd.toml"
    f.write_text(text)
    return config.load(str(f), overrides)


def test_socket_defaults_follow_state_and_flags(tmp_path: Path) -> None:
    assert _load(tmp_path, "").docker_socket == Path("/run/podkit/docker.sock")
    assert _load(tmp_path, "", state="/x/state").docker_socket == Path("/x/state/docker.sock")
    assert _load(tmp_path, '[docker]\nsocket = "/y/d.sock"\n', state="/x").docker_socket == Path("/y/d.sock")
    assert _load(tmp_path, "[docker]\nenabled = false\n").docker_socket is None
    got = _load(tmp_path, "[docker]\nenabled = false\n", docker_socket="/z/d.sock").docker_socket
    assert got == Path("/z/d.sock")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def _req(path: Path, method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    c = _UnixConnection(path)
    try:
        c.request(method, url, body=body, headers={"Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_socket_is_root_only_and_speaks_docker(daemon: Daemon) -> None:
    sock = daemon.state / "docker.sock"
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0 and st.st_gid == 0
    status, headers, data = _req(sock, "GET", "/_ping")
    assert (status, data, headers["API-Version"]) == (200, b"OK", "1.51")
    status, headers, data = _req(sock, "HEAD", "/_ping")
    assert status == 200 and headers["API-Version"] == "1.51" and data == b""
    status, _, data = _req(sock, "GET", "/v1.24/version")
    assert status == 200 and json.loads(data)["ApiVersion"] == "1.51"
    status, _, data = _req(sock, "GET", "/v1.12/version")
    assert status == 400 and "too old" in json.loads(data)["message"]
    status, _, data = _req(sock, "GET", "/v1.52/version")
    assert status == 400 and json.loads(data) == {
        "message": "client version 1.52 is too new. Maximum supported API version is 1.51"
    }
    status, _, data = _req(sock, "GET", "/v1.43/containers/nosuch/json")
    assert status == 404 and json.loads(data) == {"message": "No such container: nosuch"}
    status, _, data = _req(sock, "GET", "/v1.43/swarm")
    assert status == 503 and "not a swarm manager" in json.loads(data)["message"]
    status, _, data = _req(sock, "POST", "/v1.43/session")
    assert status == 501 and "BuildKit" in json.loads(data)["message"]
    body = json.dumps({"Image": "busybox", "HostConfig": {"DeviceRequests": [{"Count": -1}]}}).encode()
    status, _, data = _req(sock, "POST", "/containers/create", body)
    assert status == 400 and "--gpus is not supported" in json.loads(data)["message"]
    status, _, data = _req(sock, "POST", "/containers/create", json.dumps({"Image": "nosuch:1"}).encode())
    assert status == 404 and json.loads(data)["message"] == "No such image: nosuch:1"


def test_attach_websocket(daemon: Daemon, busybox_image: str) -> None:
    import asyncio

    import aiohttp

    sock = daemon.state / "docker.sock"
    body = {"Image": "busybox", "Cmd": ["sh", "-c", "read x; echo got-$x"], "OpenStdin": True}
    status, _, data = _req(sock, "POST", "/v1.43/containers/create?name=ws1", json.dumps(body).encode())
    assert status == 201, data
    cid = json.loads(data)["Id"]

    async def talk() -> bytes:
        conn = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=conn) as s:
            url = f"http://docker/v1.43/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
            async with s.ws_connect(url) as ws:
                async with s.post(f"http://docker/v1.43/containers/{cid}/start") as r:
                    assert r.status == 204
                await ws.send_bytes(b"hello\n")
                out = b""
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        out += msg.data
                    if b"got-hello" in out or msg.type != aiohttp.WSMsgType.BINARY:
                        break
                return out

    try:
        assert b"got-hello" in asyncio.run(asyncio.wait_for(talk(), 30))
    finally:
        _req(sock, "DELETE", f"/v1.43/containers/{cid}?force=1")


def test_malformed_json_query_parameters_name_the_problem(daemon: Daemon) -> None:
    """filters (every listing) must be a JSON object; the answer is docker's 400 with
    a message naming the parameter and what is wrong with it."""
    from urllib.parse import quote

    sock = daemon.state / "docker.sock"
    for raw, why in (("nope", "not JSON"), ("[1]", "want an object")):
        status, _, data = _req(sock, "GET", f"/v1.51/containers/json?filters={quote(raw)}")
        assert status == 400, data
        assert json.loads(data)["message"] == f"invalid filters {raw!r}: {why}"
    status, _, data = _req(
        sock, "GET", f"/v1.51/images/json?filters={quote(json.dumps({'dangling': ['true']}))}"
    )
    assert status == 200 and isinstance(json.loads(data), list)
