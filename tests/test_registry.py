"""The registry client on its own (no daemon): host settings, credentials, auth
challenges, and the distribution API against a real docker-registry, including a
flaky network (a fault-injecting proxy in front of the registry: the one part
that is simulated, since a failing network cannot be had on demand)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podkit.errors import DigestMismatch, InvalidArgument, NotFound, Unauthorized, Unavailable
from podkit.images.oci import Descriptor
from podkit.images.reference import parse
from podkit.images.registry.auth import (
    Credentials,
    decode_header,
    encode_header,
    from_docker_config,
    parse_challenges,
)
from podkit.images.registry.client import RegistryClient
from podkit.images.registry.hosts import RegistryHosts, is_loopback
from podkit.store import ContentStore
from tests.fixtures.registry import PASSWORD, USER, RegistryServer, build_layout, skopeo_push

# -- host settings -------------------------------------------------------------------


def test_loopback_is_plain_http_and_others_https() -> None:
    h = RegistryHosts()
    assert h.endpoint("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert h.endpoint("localhost:5000").scheme == "http"
    assert h.endpoint("[::1]:5000").scheme == "http"
    assert h.endpoint("registry.example:5000").base == "https://registry.example:5000"
    assert h.endpoint("docker.io").base == "https://registry-1.docker.io"
    assert is_loopback("127.8.9.1") and not is_loopback("10.0.0.1") and not is_loopback("example.com")


def test_host_config_mirrors_plain_http_insecure() -> None:
    h = RegistryHosts(
        {
            "reg.example": {"mirrors": ["m1.example:5000", "http://m2.example"], "insecure": True},
            "m1.example:5000": {"plain_http": True},
        }
    )
    eps = h.pull_endpoints("reg.example")
    assert [e.base for e in eps] == ["http://m1.example:5000", "http://m2.example", "https://reg.example"]
    assert [e.mirror for e in eps] == [True, True, False]
    assert eps[-1].verify_tls is False
    assert h.endpoint("reg.example").base == "https://reg.example"  # pushes skip mirrors


@pytest.mark.parametrize(
    "section,words",
    [
        ({"h": {"mirror": ["x"]}}, "unknown keys"),
        ({"h": {"mirrors": "x"}}, "mirrors must be a list"),
        ({"h": "yes"}, "must be a table"),
    ],
)
def test_host_config_refused(section: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        RegistryHosts(section)
    assert words in ei.value.message


# -- credentials and challenges ---------------------------------------------------------


def test_parse_challenges() -> None:
    chs = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push", Basic realm="x"'
    )
    assert chs[0].scheme == "bearer"
    assert chs[0].params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert chs[1].scheme == "basic" and chs[1].params["realm"] == "x"
    assert parse_challenges('Basic realm="with \\"quote\\""')[0].params["realm"] == 'with "quote"'


def test_docker_config_lookup(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpw").decode()},
                    "127.0.0.1:5000": {"username": "u", "password": "p:w"},
                    "https://reg.example": {"identitytoken": "tok"},
                }
            }
        )
    )
    assert from_docker_config("docker.io", cfg) == Credentials("hubuser", "hubpw")
    assert from_docker_config("127.0.0.1:5000", cfg) == Credentials("u", "p:w")
    assert from_docker_config("reg.example", cfg).identitytoken == "tok"
    assert not from_docker_config("other:1", cfg)
    assert not from_docker_config("x", tmp_path / "missing.json")


def test_registry_auth_header_round_trip() -> None:
    c = Credentials("me", "pw")
    assert decode_header(encode_header(c)) == c
    with pytest.raises(InvalidArgument):
        decode_header("!!not base64!!")


# -- against a real registry ---------------------------------------------------------------


def run(coro_fn: Callable[[RegistryClient], Awaitable[Any]], **kw: Any) -> Any:
    async def main() -> Any:
        client = RegistryClient(**kw)
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


def _layer_of(layout: Path) -> tuple[Descriptor, dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / mdigest).read_bytes())
    return Descriptor.from_dict(manifest["layers"][0]), manifest


def test_basic_auth_registry(auth_registry: RegistryServer, workdir: Path) -> None:
    layout = build_layout(workdir / "oci")
    skopeo_push(layout, auth_registry, "secret/app:1")
    ref = parse(f"{auth_registry.host}/secret/app:1")

    async def ok(c: RegistryClient) -> Descriptor:
        await c.login(auth_registry.host, Credentials(USER, PASSWORD))
        desc, _ = await c.repository(ref, Credentials(USER, PASSWORD)).resolve("1")
        return desc

    assert run(ok).digest.startswith("sha256:")

    async def anonymous(c: RegistryClient) -> None:
        await c.repository(ref).resolve("1")

    with pytest.raises(Unauthorized) as ei:
        run(anonymous)
    assert "podkit login" in ei.value.message

    async def wrong(c: RegistryClient) -> None:
        await c.login(auth_registry.host, Credentials(USER, "wrong"))

    with pytest.raises(Unauthorized):
        run(wrong)


class FaultProxy:
    """A reverse proxy to the registry that fails on purpose: answers 503 a few times,
    breaks blob bodies half-way, or corrupts them."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail_503 = 0
        self.cut_blobs = 0
        self.corrupt = False
        self.fail_upload = 0  # 503 for this many PUT/PATCH requests to an upload session
        self.ignore_range = False  # answer ranged blob requests with the whole blob (200)
        self.requests: list[tuple[str, str, str]] = []  # method, path, range

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        self.requests.append((request.method, request.path, request.headers.get("Range", "")))
        if self.fail_503 > 0 and "/blobs/" in request.path:
            self.fail_503 -= 1
            return web.Response(status=503, headers={"Retry-After": "0"})
        if self.fail_upload > 0 and "/blobs/uploads/" in request.path and request.method in ("PUT", "PATCH"):
            self.fail_upload -= 1
            await request.read()
            return web.Response(status=503)
        # The Host header goes through: the registry builds upload Locations from it,
        # so that they point back at this proxy.
        hdrs = dict(request.headers)
        if self.ignore_range:
            hdrs.pop("Range", None)
        async with (
            aiohttp.ClientSession(auto_decompress=False) as s,
            s.request(
                request.method,
                f"http://{self.upstream}{request.path_qs}",
                headers=hdrs,
                data=await request.read(),
                allow_redirects=True,
            ) as up,
        ):
            body = await up.read()
            out_headers = {
                k: v
                for k, v in up.headers.items()
                if k.lower()
                in ("content-type", "docker-content-digest", "location", "www-authenticate", "content-range")
            }
            if "/blobs/sha256:" in request.path and request.method == "GET":
                if self.corrupt:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                if self.cut_blobs > 0 and len(body) > 1000:
                    self.cut_blobs -= 1
                    resp = web.StreamResponse(status=up.status, headers=out_headers)
                    resp.content_length = len(body)
                    await resp.prepare(request)
                    await resp.write(body[: len(body) // 2])
                    request.transport.close()  # the connection drops mid-body
                    return resp
            return web.Response(status=up.status, body=body, headers=out_headers)


async def _with_proxy(
    registry: RegistryServer, proxy: FaultProxy, fn: Callable[[str], Awaitable[Any]]
) -> Any:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await fn(f"127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _big_layout(workdir: Path) -> Path:
    import os

    return build_layout(workdir / "oci", [{"big.bin": os.urandom(300_000)}])


def test_retries_5xx_and_resumes_broken_download(registry: RegistryServer, workdir: Path) -> None:
    layout = _big_layout(workdir)
    skopeo_push(layout, registry, "flaky:1")
    layer, _ = _layer_of(layout)
    proxy = FaultProxy(registry.host)
    proxy.fail_503, proxy.cut_blobs = 2, 1
    store = ContentStore(workdir / "store")

    async def body(host: str) -> None:
        async def fetch(c: RegistryClient) -> None:
            await c.repository(parse(f"{host}/flaky:1")).fetch_blob(layer, store)

        client = RegistryClient(backoff=0.01)
        try:
            await fetch(client)
        finally:
            await client.close()

    asyncio.run(_with_proxy(registry, proxy, body))
    assert store.has(layer.digest)
    blob_gets = [r for r in proxy.requests if r[1].endswith(layer.digest)]
    assert len(blob_gets) == 4  # two 503s, one broken, one resumed
    assert blob_gets[-1][2].startswith("bytes=") and blob_gets[-1][2] != "bytes=0-"
    assert not list(store.ingest_dir.iterdir())


def test_gives_up_with_unavailable(registry: RegistryServer, workdir: Path) -> None:
    layout = _big_layout(workdir)
    skopeo_push(layout, registry, "down:1")
    layer, _ = _layer_of(layout)
    proxy = FaultProxy(registry.host)
    proxy.fail_503 = 100
    store = ContentStore(workdir / "store")

    async def body(host: str) -> None:
        client = RegistryClient(backoff=0.01, retries=2)
        try:
            await client.repository(parse(f"{host}/down:1")).fetch_blob(layer, store)
        finally:
            await client.close()

    with pytest.raises(Unavailable) as ei:
        asyncio.run(_with_proxy(registry, proxy, body))
    assert "503" in ei.value.message and "3 attempts" in ei.value.message
    assert not store.has(layer.digest) and not list(store.ingest_dir.iterdir())


def test_corrupt_blob_is_refused_and_not_stored(registry: RegistryServer, workdir: Path) -> None:
    layout = _big_layout(workdir)
    skopeo_push(layout, registry, "bad:1")
    layer, _ = _layer_of(layout)
    proxy = FaultProxy(registry.host)
    proxy.corrupt = True
    store = ContentStore(workdir / "store")

    async def body(host: str) -> None:
        client = RegistryClient(backoff=0.01)
        try:
            await client.repository(parse(f"{host}/bad:1")).fetch_blob(layer, store)
        finally:
            await client.close()

    with pytest.raises(DigestMismatch):
        asyncio.run(_with_proxy(registry, proxy, body))
    assert not store.has(layer.digest) and not list(store.ingest_dir.iterdir())


def test_manifest_by_digest_and_unknown(registry: RegistryServer, workdir: Path) -> None:
    layout = build_layout(workdir / "oci")
    skopeo_push(layout, registry, "m:1")
    ref = parse(f"{registry.host}/m:1")

    async def body(c: RegistryClient) -> tuple[Descriptor, Descriptor]:
        repo = c.repository(ref)
        by_tag, data = await repo.resolve("1")
        by_digest, data2 = await repo.resolve(by_tag.digest)
        assert data == data2
        with pytest.raises(NotFound):
            await repo.resolve("2")
        return by_tag, by_digest

    a, b = run(body)
    assert a.digest == b.digest and a.media_type == "application/vnd.oci.image.manifest.v1+json"


def test_chunked_and_monolithic_upload(registry: RegistryServer, workdir: Path) -> None:
    import os

    store = ContentStore(workdir / "store")
    small = store.put(b"small blob")
    big = store.put(os.urandom(250_000))
    ref = parse(f"{registry.host}/up/load:1")

    async def body(c: RegistryClient) -> list[str]:
        repo = c.repository(ref, push=True)
        out = []
        for d in (small, big):
            desc = Descriptor("application/octet-stream", d, store.size(d))
            out.append(await repo.upload_blob(desc, str(store.path(d))))
        desc = Descriptor("application/octet-stream", big, store.size(big))
        out.append(await repo.upload_blob(desc, str(store.path(big))))
        other = c.repository(parse(f"{registry.host}/other/repo:1"), push=True)
        other.extra_scopes.append("repository:up/load:pull")
        out.append(await other.upload_blob(desc, str(store.path(big)), mount_from="up/load"))
        return out

    assert run(body, chunk_size=100_000) == ["pushed", "pushed", "exists", "mounted"]
    for d in (small, big):
        status, headers, data = registry.api(f"/v2/up/load/blobs/{d}")
        assert status == 200 and data == store.read(d)
    assert registry.api(f"/v2/other/repo/blobs/{big}", method="HEAD")[0] == 200


def test_bearer_token_auth(token_registry: RegistryServer, workdir: Path) -> None:
    """Docker Hub's flow against a real registry: anonymous pull tokens, credentials
    for push, scopes as the spec names them."""
    import os

    layout = build_layout(workdir / "oci", [{"f.bin": os.urandom(50_000)}])
    skopeo_push(layout, token_registry, "tok/app:1")
    tok = token_registry.token
    assert tok is not None
    tok.requests.clear()
    store = ContentStore(workdir / "store")
    ref = parse(f"{token_registry.host}/tok/app:1")
    layer, _ = _layer_of(layout)

    async def anonymous_pull(c: RegistryClient) -> Descriptor:
        repo = c.repository(ref)
        desc, _ = await repo.resolve("1")
        await repo.fetch_blob(layer, store)
        return desc

    assert run(anonymous_pull).digest.startswith("sha256:")
    assert store.has(layer.digest)
    # One token for the whole pull (cached), anonymous, scoped to this repository.
    assert tok.requests == [
        {"user": "", "scopes": ["repository:tok/app:pull"], "service": ["podkit-test-registry"]}
    ]

    blob = store.put(b"pushed through a token")

    async def push(c: RegistryClient, creds: Credentials) -> str:
        repo = c.repository(parse(f"{token_registry.host}/tok/other:1"), creds, push=True)
        return await repo.upload_blob(
            Descriptor("application/octet-stream", blob, store.size(blob)), str(store.path(blob))
        )

    with pytest.raises(Unauthorized):  # an anonymous token grants no push
        run(lambda c: push(c, Credentials()))
    assert run(lambda c: push(c, Credentials(USER, PASSWORD))) == "pushed"
    assert {
        "user": USER,
        "scopes": ["repository:tok/other:pull,push"],
        "service": ["podkit-test-registry"],
    } in tok.requests
    with pytest.raises(Unauthorized):  # the token server refuses wrong credentials
        run(lambda c: c.login(token_registry.host, Credentials(USER, "nope")))
    run(lambda c: c.login(token_registry.host, Credentials(USER, PASSWORD)))


def test_daemon_falls_back_to_its_own_docker_config(tmp_path: Path) -> None:
    from podkit.images.distribution import Registry, normalise_registry
    from podkit.store import Database

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"reg.example:5000": {"username": "d", "password": "p"}}}))
    db = Database(tmp_path / "m.db")
    try:
        reg = Registry(ContentStore(tmp_path), None, db, {"max_concurrent_downloads": 2}, docker_config=cfg)
        assert reg.credentials("reg.example:5000") == Credentials("d", "p")
        given = Credentials("request", "wins")
        assert reg.credentials("reg.example:5000", given) == given
        assert not reg.credentials("other.example")
        with pytest.raises(InvalidArgument):
            Registry(ContentStore(tmp_path), None, db, {"max_concurrent_downloads": 0})
    finally:
        db.close()
    assert normalise_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalise_registry("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"


def test_broken_upload_starts_over(registry: RegistryServer, workdir: Path) -> None:
    import os

    store = ContentStore(workdir / "store")
    blob = store.put(os.urandom(150_000))
    desc = Descriptor("application/octet-stream", blob, store.size(blob))
    proxy = FaultProxy(registry.host)
    proxy.fail_upload = 2

    async def body(host: str) -> str:
        client = RegistryClient(backoff=0.01, chunk_size=100_000)  # two PATCH chunks
        try:
            return await client.repository(parse(f"{host}/re/up:1"), push=True).upload_blob(
                desc, str(store.path(blob))
            )
        finally:
            await client.close()

    assert asyncio.run(_with_proxy(registry, proxy, body)) == "pushed"
    posts = [r for r in proxy.requests if r[0] == "POST"]
    assert len(posts) == 3  # two broken sessions, then one that went through
    status, _, data = registry.api(f"/v2/re/up/blobs/{blob}")
    assert status == 200 and data == store.read(blob)


def test_tls_registry_verification(tls_registry: RegistryServer, workdir: Path) -> None:
    """HTTPS: a certificate nobody vouches for is refused with a hint; ca_file trusts
    it; insecure skips the check. (On loopback, plain_http = false asks for HTTPS.)"""
    skopeo_push(build_layout(workdir / "oci"), tls_registry, "tls:1")
    host = tls_registry.host
    ref = parse(f"{host}/tls:1")

    def resolve(settings: dict[str, Any]) -> Descriptor:
        async def body(c: RegistryClient) -> Descriptor:
            return (await c.repository(ref).resolve("1"))[0]

        return run(body, hosts=RegistryHosts({host: {"plain_http": False, **settings}}))

    with pytest.raises(Unavailable) as ei:
        resolve({})
    assert "certificate not trusted" in ei.value.message and "ca_file" in ei.value.message
    a = resolve({"ca_file": str(tls_registry.cert)})
    b = resolve({"insecure": True})
    assert a.digest == b.digest
    with pytest.raises(InvalidArgument):
        resolve({"ca_file": str(workdir / "missing.pem")})


def test_retry_after_forms() -> None:
    import email.utils
    import time

    from podkit.images.registry.client import _retry_after

    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 15 < (_retry_after(later) or 0) <= 20
    assert _retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0.0


def test_resume_when_the_server_ignores_range(registry: RegistryServer, workdir: Path) -> None:
    layout = _big_layout(workdir)
    skopeo_push(layout, registry, "norange:1")
    layer, _ = _layer_of(layout)
    proxy = FaultProxy(registry.host)
    proxy.cut_blobs, proxy.ignore_range = 1, True
    store = ContentStore(workdir / "store")

    async def body(host: str) -> None:
        client = RegistryClient(backoff=0.01)
        try:
            await client.repository(parse(f"{host}/norange:1")).fetch_blob(layer, store)
        finally:
            await client.close()

    asyncio.run(_with_proxy(registry, proxy, body))
    assert store.has(layer.digest)  # started over from byte 0 and verified
    assert not list(store.ingest_dir.iterdir())


def test_manifest_kind_sniffed_when_untyped() -> None:
    from podkit.images.registry.client import _sniff_media_type

    assert _sniff_media_type({"manifests": []}).endswith("index.v1+json")
    assert _sniff_media_type({"config": {}, "layers": []}).endswith("manifest.v1+json")
    with pytest.raises(InvalidArgument) as ei:
        _sniff_media_type({"schemaVersion": 1, "fsLayers": []})
    assert "schema 1" in ei.value.message
    with pytest.raises(InvalidArgument):
        _sniff_media_type(["not", "a", "manifest"])


class _ForwardProxy:
    """A minimal HTTP forward proxy on 127.0.0.1 that sends every request to one
    upstream registry, whatever host the absolute URI names (so no DNS is involved)."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading
        import urllib.error
        import urllib.parse
        import urllib.request

        self.seen: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _forward(self) -> None:
                outer.seen.append(f"{self.command} {self.path}")
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "proxy-connection", "connection")
                }
                target = f"http://{upstream}{u.path}" + (f"?{u.query}" if u.query else "")
                req = urllib.request.Request(target, data=body, method=self.command, headers=hdrs)
                try:
                    up = urllib.request.urlopen(req, timeout=30)
                    status = up.status
                except urllib.error.HTTPError as e:
                    up, status = e, e.code
                data = up.read() if self.command != "HEAD" else b""
                self.send_response(status)
                for k, v in up.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", up.headers.get("Content-Length") or str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_http_proxy_from_the_environment(
    registry: RegistryServer, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is used for registries by name (here one that only the proxy knows),
    never for loopback ones; NO_PROXY is honoured."""
    from yarl import URL

    layout = build_layout(workdir / "oci")
    skopeo_push(layout, registry, "proxied:1")
    layer, _ = _layer_of(layout)
    proxy = _ForwardProxy(registry.host)
    for var in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    store = ContentStore(workdir / "store")
    try:
        hosts = RegistryHosts({"registry.test:5000": {"plain_http": True}})

        async def body(c: RegistryClient) -> Descriptor:
            repo = c.repository(parse("registry.test:5000/proxied:1"))
            desc, _ = await repo.resolve("1")
            await repo.fetch_blob(layer, store)
            # A loopback registry is reached directly even with a proxy set.
            await c.repository(parse(f"{registry.host}/proxied:1")).resolve("1")
            return desc

        assert run(body, hosts=hosts).digest.startswith("sha256:")
        assert store.has(layer.digest)
        assert "GET http://registry.test:5000/v2/proxied/manifests/1" in proxy.seen
        assert not any(registry.host in s for s in proxy.seen)
        monkeypatch.setenv("no_proxy", "registry.test")
        assert RegistryClient(hosts=hosts).proxy_for(URL("http://registry.test:5000/v2/")) is None
        assert RegistryClient(hosts=hosts).proxy_for(URL("http://other.test/v2/")) == proxy.url
    finally:
        proxy.close()


def test_blob_sources_remember_and_prune(tmp_path: Path) -> None:
    from podkit.images.registry.sources import BlobSources
    from podkit.store import Database

    db = Database(tmp_path / "m.db")
    try:
        src = BlobSources(db)
        a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
        src.add("reg:1", "one/app", [a, b])
        src.add("reg:1", "two/app", [a])
        src.add("other:1", "x", [a])
        assert src.repositories(a, "reg:1") == ["two/app", "one/app"]  # most recent first
        assert src.repositories(b, "other:1") == []
        assert src.prune(lambda d: d == a) == 1
        assert src.repositories(b, "reg:1") == [] and len(src.repositories(a, "reg:1")) == 2
    finally:
        db.close()


def test_sdk_stored_auth_reads_docker_files(tmp_path: Path) -> None:
    """The CLI/SDK side (stdlib only) reads docker's config.json the way docker writes it."""
    from podkit.client.distribution import encode_auth, registry_host, stored_auth

    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                    "127.0.0.1:5000": {"identitytoken": "refresh-me"},
                }
            }
        )
    )
    assert stored_auth("docker.io", cfg) == {"username": "hub", "password": "pw"}
    assert stored_auth("127.0.0.1:5000", cfg) == {"identitytoken": "refresh-me"}
    assert stored_auth("elsewhere:1", cfg) is None
    assert decode_header(encode_auth({"username": "a", "password": "b"})) == Credentials("a", "b")
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    cfg.write_text("{broken")
    with pytest.raises(InvalidArgument):
        stored_auth("docker.io", cfg)
