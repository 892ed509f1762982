"""An OCI distribution (``/v2/``) client on aiohttp's client.

``RegistryClient`` holds the HTTP session, the host settings and a token cache;
``client.repository(ref)`` gives a ``Repository`` that speaks the distribution
API for one repository: manifests by tag or digest, blobs streamed into the
content store (verified while they arrive, resumed with ``Range`` after a broken
connection), blob uploads (monolithic or chunked, cross-repository mounts) and
manifest pushes.

Authentication follows the registry's ``WWW-Authenticate`` challenge: Bearer
(a token from the realm, anonymously or with the user's credentials, OAuth2
refresh tokens included) or Basic. Transient failures (connection errors,
timeouts, HTTP 5xx and 429) are retried with exponential backoff. HTTP(S)_PROXY
and NO_PROXY from the daemon's environment are honoured, except for loopback
registries, which are always reached directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from podkit._version import __version__
from podkit.errors import (
    DigestMismatch,
    InvalidArgument,
    NotFound,
    PodkitError,
    Unauthorized,
    Unavailable,
)
from podkit.images.oci import MANIFEST_ACCEPT, Descriptor
from podkit.images.reference import Reference
from podkit.images.registry.auth import Challenge, Credentials, parse_challenges
from podkit.images.registry.hosts import Endpoint, RegistryHosts, is_loopback
from podkit.store.content import ContentStore, Digest

log = logging.getLogger(__name__)

USER_AGENT = f"podkit/{__version__}"
MAX_MANIFEST = 4 << 20  # the distribution spec lets registries refuse bigger ones
_MAX_SMALL_BODY = 1 << 20  # token answers and error bodies: read no more than this


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body up to ``limit`` bytes. (StreamReader.read(n) returns what is buffered,
    maybe far less than n: one call would cut a body that came in several chunks.)"""
    buf = bytearray()
    while len(buf) < limit:
        chunk = await resp.content.read(limit - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


_CHUNK = 1 << 20  # bytes handed to the hashing writer thread at a time
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

Progress = Callable[[int], None]  # called with bytes done so far


class _Transient(Exception):
    """A failure worth retrying (connection broke, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Token:
    header: str
    expires: float


class RegistryClient:
    """One per daemon: a shared HTTP session, host settings and token cache."""

    def __init__(
        self,
        hosts: RegistryHosts | None = None,
        *,
        retries: int = 4,
        backoff: float = 0.25,
        chunk_size: int = 32 << 20,
        connect_timeout: float = 30.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.hosts = hosts or RegistryHosts()
        self.retries = retries
        self.backoff = backoff
        self.chunk_size = chunk_size  # uploads bigger than this go in PATCH chunks
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._ssl: dict[str, Any] = {}  # ca_file -> SSLContext
        # HTTP(S)_PROXY / NO_PROXY of the daemon's environment, read once, as docker does.
        self._proxies = {
            k: v for k, v in urllib.request.getproxies_environment().items() if k in ("http", "https", "no")
        }

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Many parallel layer downloads from one registry: lift aiohttp's default cap.
            connector = aiohttp.TCPConnector(limit=64, limit_per_host=16, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._session

    def proxy_for(self, url: URL) -> str | None:
        """The proxy for a URL: from the environment; never for loopback hosts or
        hosts NO_PROXY names."""
        host = url.host or ""
        if url.scheme not in self._proxies or is_loopback(host):
            return None
        if urllib.request.proxy_bypass_environment(host, self._proxies):
            return None
        return self._proxies[url.scheme]

    def ssl_for(self, ep: Endpoint) -> Any:
        """aiohttp's ``ssl`` argument for an endpoint: default verification, none
        (``insecure``), or a context that also trusts the configured CA file."""
        if not ep.verify_tls:
            return False
        if not ep.ca_file:
            return None
        ctx = self._ssl.get(ep.ca_file)
        if ctx is None:
            import ssl

            ctx = ssl.create_default_context()
            try:
                ctx.load_verify_locations(cafile=ep.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"registry {ep.host}: cannot load ca_file {ep.ca_file}: {e}") from None
            self._ssl[ep.ca_file] = ctx
        return ctx

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def repository(
        self, ref: Reference, creds: Credentials | None = None, *, push: bool = False
    ) -> Repository:
        endpoints = [self.hosts.endpoint(ref.registry)] if push else self.hosts.pull_endpoints(ref.registry)
        return Repository(self, ref.registry, ref.repository, endpoints, creds or Credentials(), push)

    async def login(self, registry: str, creds: Credentials) -> None:
        """Check credentials against a registry's /v2/ (and its token server)."""
        repo = Repository(self, registry, "", [self.hosts.endpoint(registry)], creds, False)
        await repo.ping()

    async def _token(self, challenge: Challenge, scopes: list[str], creds: Credentials, ep: Endpoint) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise Unauthorized(f"registry {ep.host} sent a Bearer challenge without a realm")
        service = challenge.params.get("service", "")
        scope = " ".join(scopes)
        key = (realm, service, scope, creds.username or creds.identitytoken[:16])
        cached = self._tokens.get(key)
        if cached and cached.expires > time.monotonic():
            return cached.header
        url = URL(realm)
        if url.scheme not in ("http", "https"):
            raise Unauthorized(f"registry {ep.host} names a token realm that is not http(s): {realm}")
        ssl: Any = self.ssl_for(ep)
        try:
            if creds.identitytoken:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identitytoken,
                    "service": service,
                    "client_id": "podkit",
                    "scope": scope,
                }
                req = self.session.post(url, data=form, ssl=ssl, proxy=self.proxy_for(url))
            else:
                # One scope parameter per scope, as docker sends them (the OAuth2 form
                # above joins them with spaces instead).
                q = [("service", service)] if service else []
                q += [("scope", sc) for sc in scopes]
                hdrs = {"Authorization": creds.basic()} if creds.username else {}
                req = self.session.get(url.update_query(q), headers=hdrs, ssl=ssl, proxy=self.proxy_for(url))
            async with req as resp:
                # bounded: a token is small, and a hostile token server must not fill memory
                body = await read_limited(resp, _MAX_SMALL_BODY)
                if resp.status in (401, 403):
                    raise Unauthorized(
                        f"{ep.host}: authentication failed at the token server"
                        + (" (check the username and password)" if creds else "")
                    )
                if resp.status >= 400:
                    raise Unavailable(f"{ep.host}: token server answered HTTP {resp.status}")
        except aiohttp.ClientError as e:
            raise Unavailable(f"{ep.host}: cannot reach the token server {realm}: {e}") from None
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise Unauthorized(f"{ep.host}: the token server's answer holds no token")
        ttl = max(10, int(data.get("expires_in") or 60))
        header = f"Bearer {token}"
        now = time.monotonic()
        if len(self._tokens) > 256:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires > now}
        self._tokens[key] = _Token(header, now + ttl - 5)
        return header


class Repository:
    """The distribution API of one repository on one registry."""

    def __init__(
        self,
        client: RegistryClient,
        registry: str,
        name: str,
        endpoints: list[Endpoint],
        creds: Credentials,
        push: bool,
    ) -> None:
        self.client = client
        self.registry = registry
        self.name = name
        self.endpoints = endpoints
        self.creds = creds
        self.actions = "pull,push" if push else "pull"
        self.extra_scopes: list[str] = []
        self._auth: dict[str, str] = {}  # endpoint base -> Authorization header

    # -- plumbing --------------------------------------------------------------

    def _scopes(self) -> list[str]:
        if not self.name:
            return []
        return [f"repository:{self.name}:{self.actions}", *self.extra_scopes]

    def _url(self, ep: Endpoint, path: str) -> URL:
        return URL(f"{ep.base}/v2/{self.name}/{path}" if self.name else f"{ep.base}/v2/")

    async def _authenticate(self, ep: Endpoint, resp: aiohttp.ClientResponse, sent: str | None) -> bool:
        """Answer a 401's challenge; False when there is nothing more to try.

        ``sent`` is the Authorization the refused request carried: when a parallel
        request has meanwhile obtained another one, simply retry with that.
        """
        current = self._auth.get(ep.base)
        if current is not None and current != sent:
            return True
        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        for ch in challenges:
            if ch.scheme == "bearer":
                if self.creds.registrytoken:
                    header = f"Bearer {self.creds.registrytoken}"
                else:
                    header = await self.client._token(ch, self._scopes(), self.creds, ep)
            elif ch.scheme == "basic" and self.creds.username:
                header = self.creds.basic()
            else:
                continue
            if header == sent:
                return False  # sent exactly this and was refused
            self._auth[ep.base] = header
            return True
        return False

    async def _request(
        self,
        method: str,
        ep: Endpoint,
        url: URL,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | bytes | None = None,
        what: str = "",
        retries: int | None = None,
    ) -> aiohttp.ClientResponse:
        """Send with auth and retries; the caller reads and releases the response.

        ``body`` may be a factory so that a retried upload starts from the beginning.
        """
        ssl: Any = self.client.ssl_for(ep)
        attempt = 0
        authed = 0
        connect_failures = 0
        while True:
            hdrs = dict(headers or {})
            if ep.base in self._auth:
                hdrs["Authorization"] = self._auth[ep.base]
            data = body() if callable(body) else body
            try:
                resp = await self.client.session.request(
                    method,
                    url,
                    headers=hdrs,
                    data=data,
                    ssl=ssl,
                    allow_redirects=True,
                    proxy=self.client.proxy_for(url),
                )
            except aiohttp.ClientConnectorCertificateError as e:
                raise Unavailable(
                    f"registry {ep.host}: TLS certificate not trusted ({e.certificate_error}); "
                    f'trust its CA with ca_file, or set insecure = true, in [registries."{ep.host}"]'
                ) from None
            except aiohttp.ClientConnectorError as e:
                # Nothing listens (or no route): one quick retry covers a registry
                # restarting; more would only make the user wait for the same answer.
                connect_failures += 1
                if connect_failures > 1:
                    raise Unavailable(f"cannot connect to registry {ep.host}: {e.os_error or e}") from None
                err = _Transient(f"{ep.host}: cannot connect: {e.os_error or e}")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                err = _Transient(f"{ep.host}: {what or method} failed: {type(e).__name__}: {e}")
            else:
                if resp.status == 401 and authed < 2:
                    authenticated = await self._authenticate(ep, resp, hdrs.get("Authorization"))
                    resp.release()
                    if authenticated:
                        authed += 1
                        continue
                    raise Unauthorized(self._denied(what))
                if resp.status not in _RETRY_STATUSES:
                    return resp
                err = _Transient(
                    f"{ep.host}: {what or method} answered HTTP {resp.status}",
                    _retry_after(resp.headers.get("Retry-After")),
                )
                resp.release()
            attempt += 1
            if attempt > (self.client.retries if retries is None else retries):
                raise Unavailable(f"{err} (gave up after {attempt} attempts)")
            delay = (
                err.retry_after
                if err.retry_after is not None
                else self.client.backoff * (2 ** (attempt - 1)) * (0.75 + random.random() / 2)
            )
            log.info("%s; retrying in %.2fs", err, delay)
            await asyncio.sleep(min(delay, 30.0))

    def _denied(self, what: str) -> str:
        if self.name:
            return (
                f"{what or 'request'} of {self.registry}/{self.name} denied: the repository does "
                "not exist or needs authentication (podkit login " + self.registry + ")"
            )
        return f"{self.registry}: authentication required or credentials refused"

    async def _error(self, resp: aiohttp.ClientResponse, what: str) -> PodkitError:
        """Turn an unexpected answer into the right podkit error, with the registry's words."""
        body = await read_limited(resp, _MAX_SMALL_BODY)  # only the registry's words are wanted
        resp.release()
        detail = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError, IndexError, KeyError):
            errs = json.loads(body)["errors"]
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs)
        detail = detail or f"HTTP {resp.status}"
        msg = f"{what} ({self.registry}/{self.name}): {detail}"
        if resp.status == 404:
            return NotFound(msg)
        if resp.status in (401, 403):
            return Unauthorized(msg)
        if resp.status == 400 or resp.status == 405:
            return InvalidArgument(msg)
        return Unavailable(msg)

    async def _each_endpoint(self, fn: Callable[[Endpoint], Awaitable[Any]]) -> Any:
        """Try endpoints in order (mirrors first); the last one's error wins."""
        last: PodkitError | None = None
        for i, ep in enumerate(self.endpoints):
            try:
                result = await fn(ep)
            except (NotFound, Unavailable, Unauthorized) as e:
                if i == len(self.endpoints) - 1:
                    raise
                log.info("mirror %s failed (%s); trying the next endpoint", ep.host, e.message)
                last = e
                continue
            if i:  # remember the endpoint that worked for the blobs that follow
                self.endpoints = self.endpoints[i:] + self.endpoints[:i]
            return result
        raise last or Unavailable(f"no endpoint for {self.registry}")

    # -- API ---------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/: the registry is up and accepts our credentials (when it asks for any)."""
        ep = self.endpoints[-1]
        resp = await self._request("GET", ep, self._url(ep, ""), what="login")
        try:
            if resp.status >= 400:
                raise await self._error(resp, "login")
        finally:
            resp.release()

    async def resolve(
        self, obj: str, local: Callable[[str], bytes | None] | None = None
    ) -> tuple[Descriptor, bytes]:
        """Fetch a manifest or index by tag or digest; returns its descriptor and bytes.

        With ``local`` (digest -> bytes or None, e.g. the content store), a tag is
        first resolved with HEAD, and a manifest already held is not downloaded
        again: an up-to-date pull costs one small request (and registries that
        count pulls, as Docker Hub does, do not count HEADs).
        """

        async def one(ep: Endpoint) -> tuple[Descriptor, bytes]:
            if local is not None:
                digest = obj if obj.startswith("sha256:") else await self._head_manifest(ep, obj)
                data = local(digest) if digest else None
                if data is not None and Digest.of(data) == digest:
                    return self._describe(data, "", f"manifest {obj}", ep), data
            return await self._get_manifest(ep, obj)

        return await self._each_endpoint(one)

    async def _head_manifest(self, ep: Endpoint, obj: str) -> str | None:
        resp = await self._request(
            "HEAD", ep, self._url(ep, f"manifests/{obj}"), headers={"Accept": MANIFEST_ACCEPT}, what="pull"
        )
        try:
            if resp.status == 404:
                raise await self._error(resp, f"manifest {obj}")
            digest = resp.headers.get("Docker-Content-Digest", "")
            return digest if resp.status == 200 and digest.startswith("sha256:") else None
        finally:
            resp.release()

    async def _get_manifest(self, ep: Endpoint, obj: str) -> tuple[Descriptor, bytes]:
        what = f"manifest {obj}"
        resp = await self._request(
            "GET", ep, self._url(ep, f"manifests/{obj}"), headers={"Accept": MANIFEST_ACCEPT}, what="pull"
        )
        try:
            if resp.status != 200:
                raise await self._error(resp, what)
            length = resp.content_length
            if length is not None and length > MAX_MANIFEST:
                raise InvalidArgument(f"{what} is {length} bytes, more than the {MAX_MANIFEST} allowed")
            data = await read_limited(resp, MAX_MANIFEST + 1)
            if len(data) > MAX_MANIFEST:
                raise InvalidArgument(f"{what} is larger than {MAX_MANIFEST} bytes")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except aiohttp.ClientError as e:
            raise Unavailable(f"{ep.host}: reading {what} failed: {e}") from None
        finally:
            resp.release()
        desc = self._describe(data, ctype, what, ep)
        if obj.startswith("sha256:") and desc.digest != obj:
            raise DigestMismatch(f"{what}: the registry sent content with digest {desc.digest}")
        return desc, data

    def _describe(self, data: bytes, ctype: str, what: str, ep: Endpoint) -> Descriptor:
        try:
            doc = json.loads(data)
        except ValueError:
            raise InvalidArgument(f"{what} from {ep.host} is not JSON") from None
        media_type = (doc.get("mediaType") if isinstance(doc, dict) else None) or ctype
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(doc)
        return Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data))

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        got, data = await self.resolve(desc.digest)
        if got.size != desc.size and desc.size:
            raise DigestMismatch(f"manifest {desc.digest}: expected {desc.size} bytes, got {got.size}")
        return data

    async def fetch_blob(
        self, desc: Descriptor, content: ContentStore, progress: Progress | None = None
    ) -> None:
        """Stream a blob into the content store; it is committed only once verified."""

        async def one(ep: Endpoint) -> None:
            await self._fetch_blob(ep, desc, content, progress)

        await self._each_endpoint(one)

    async def _fetch_blob(
        self, ep: Endpoint, desc: Descriptor, content: ContentStore, progress: Progress | None
    ) -> None:
        writer = content.writer(desc.digest, desc.size)
        url = self._url(ep, f"blobs/{desc.digest}")
        failures = 0
        try:
            while True:
                hdrs = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
                resp = await self._request("GET", ep, url, headers=hdrs, what="pull")
                try:
                    resumed_at = (
                        _range_start(resp.headers.get("Content-Range", "")) if resp.status == 206 else 0
                    )
                    if resp.status not in (200, 206):
                        raise await self._error(resp, f"blob {desc.digest}")
                    if writer.offset and resumed_at != writer.offset:
                        # The server ignored Range (or answered another one): start over.
                        writer.abort()
                        writer = content.writer(desc.digest, desc.size)
                        if resp.status == 206:
                            continue
                    await _copy(resp.content, writer, progress)
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
                    failures += 1
                    if failures > self.client.retries:
                        raise Unavailable(
                            f"{ep.host}: download of {desc.digest} kept breaking: {e}"
                        ) from None
                    log.info("download of %s broke at %d bytes (%s); resuming", desc.digest, writer.offset, e)
                    await asyncio.sleep(self.client.backoff * failures)
                    continue
                finally:
                    resp.release()
                break
            await asyncio.to_thread(writer.commit)
        finally:
            writer.abort()  # no-op after a commit: the file was renamed away

    async def read_blob(self, desc: Descriptor, limit: int = 64 << 20) -> bytes:
        """A small blob (an image config) in memory, verified."""
        if desc.size > limit:
            raise InvalidArgument(f"blob {desc.digest} is {desc.size} bytes, more than {limit}")

        async def one(ep: Endpoint) -> bytes:
            resp = await self._request("GET", ep, self._url(ep, f"blobs/{desc.digest}"), what="pull")
            try:
                if resp.status != 200:
                    raise await self._error(resp, f"blob {desc.digest}")
                return await read_limited(resp, limit + 1)
            except aiohttp.ClientError as e:
                raise Unavailable(f"{ep.host}: reading blob {desc.digest} failed: {e}") from None
            finally:
                resp.release()

        data = await self._each_endpoint(one)
        if Digest.of(data) != desc.digest:
            raise DigestMismatch(f"blob {desc.digest}: the registry sent other content")
        return data

    async def has_blob(self, digest: str) -> bool:
        ep = self.endpoints[0]
        resp = await self._request("HEAD", ep, self._url(ep, f"blobs/{digest}"), what="push")
        resp.release()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise await self._error(resp, f"blob {digest}")

    async def upload_blob(
        self, desc: Descriptor, path: str, *, mount_from: str | None = None, progress: Progress | None = None
    ) -> str:
        """Upload a blob unless the registry has it; returns 'exists', 'mounted' or 'pushed'.

        An upload that breaks is started over in a new upload session: what the
        registry kept of the broken one is unknown.
        """
        if await self.has_blob(desc.digest):
            return "exists"
        failures = 0
        while True:
            try:
                return await self._upload_once(desc, path, mount_from, progress)
            except _Transient as e:
                failures += 1
                if failures > self.client.retries:
                    raise Unavailable(f"{e} (gave up after {failures} attempts)") from None
                log.info("%s; starting the upload over", e)
                await asyncio.sleep(self.client.backoff * failures)

    async def _upload_once(
        self, desc: Descriptor, path: str, mount_from: str | None, progress: Progress | None
    ) -> str:
        ep = self.endpoints[0]
        q: dict[str, str] = {}
        if mount_from and mount_from != self.name:
            q = {"mount": desc.digest, "from": mount_from}
        url = self._url(ep, "blobs/uploads/").update_query(q)
        resp = await self._request("POST", ep, url, headers={"Content-Length": "0"}, what="push")
        try:
            if resp.status == 201 and q:
                return "mounted"
            if resp.status != 202:
                raise await self._error(resp, f"upload of {desc.digest}")
            location = _location(ep, url, resp)
        finally:
            resp.release()

        async def send(method: str, url: URL, body: Any, headers: dict[str, str]) -> URL | None:
            try:
                resp = await self._request(
                    method, ep, url, body=body, headers=headers, what="push", retries=0
                )
            except Unavailable as e:
                raise _Transient(e.message) from None
            try:
                if resp.status in _RETRY_STATUSES:
                    raise _Transient(f"{ep.host}: upload answered HTTP {resp.status}")
                if resp.status not in (201, 202, 204):
                    raise await self._error(resp, f"upload of {desc.digest}")
                return _location(ep, url, resp) if resp.status == 202 else None
            finally:
                resp.release()

        octet = {"Content-Type": "application/octet-stream"}
        if desc.size <= self.client.chunk_size:
            await send(
                "PUT",
                location.update_query({"digest": desc.digest}),
                lambda: _file_body(path, 0, desc.size, progress),
                {**octet, "Content-Length": str(desc.size)},
            )
            return "pushed"
        offset = 0
        while offset < desc.size:
            n = min(self.client.chunk_size, desc.size - offset)
            nxt = await send(
                "PATCH",
                location,
                lambda start=offset, n=n: _file_body(path, start, n, progress, start),
                {**octet, "Content-Length": str(n), "Content-Range": f"{offset}-{offset + n - 1}"},
            )
            if nxt is None:
                raise Unavailable(f"{ep.host}: a chunk upload was not answered with 202 Accepted")
            location = nxt
            offset += n
        await send("PUT", location.update_query({"digest": desc.digest}), None, {"Content-Length": "0"})
        return "pushed"

    async def put_manifest(self, obj: str, media_type: str, data: bytes) -> str:
        ep = self.endpoints[0]
        resp = await self._request(
            "PUT",
            ep,
            self._url(ep, f"manifests/{obj}"),
            body=data,
            headers={"Content-Type": media_type},
            what="push",
        )
        try:
            if resp.status not in (200, 201):
                raise await self._error(resp, f"manifest {obj}")
            return resp.headers.get("Docker-Content-Digest") or Digest.of(data)
        finally:
            resp.release()


async def _copy(stream: aiohttp.StreamReader, writer: Any, progress: Progress | None) -> None:
    """Move a response body into a content Writer.

    Chunks are gathered to ~1 MiB and hashed+written in a worker thread (hashlib and
    file writes drop the GIL), so the event loop keeps reading sockets meanwhile.
    """
    buf = bytearray()
    pending: asyncio.Future[None] | None = None
    inflight = 0
    last = 0.0
    try:
        while True:
            data = await stream.readany()
            if data:
                buf += data
                if len(buf) < _CHUNK:
                    continue
            if pending is not None:
                await pending
                pending = None
            if buf:
                block = bytes(buf)
                buf.clear()
                inflight = len(block)
                pending = asyncio.ensure_future(asyncio.to_thread(writer.write, block))
            if not data:
                break
            if progress is not None:
                now = time.monotonic()
                if now - last > 0.1:
                    last = now
                    progress(writer.offset + inflight)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
        # Keep what arrived, so that the retry asks only for the rest (Range).
        if pending is not None:
            await pending
            pending = None
        if buf:
            await asyncio.to_thread(writer.write, bytes(buf))
        raise
    finally:
        # Whatever happens, the writer's offset must match what it really holds
        # before anyone resumes or aborts it.
        if pending is not None:
            await pending
    if progress is not None:
        progress(writer.offset)


async def _file_body(
    path: str, start: int, length: int, progress: Progress | None, base: int = 0
) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(f.seek, start)
        left = length
        done = 0
        while left > 0:
            data = await asyncio.to_thread(f.read, min(_CHUNK, left))
            if not data:
                raise DigestMismatch(f"{path} is shorter than its descriptor says")
            left -= len(data)
            done += len(data)
            yield data
            if progress is not None:
                progress(base + done)
    finally:
        f.close()


def _location(ep: Endpoint, request_url: URL, resp: aiohttp.ClientResponse) -> URL:
    loc = resp.headers.get("Location")
    if not loc:
        raise Unavailable(f"{ep.host}: upload answer without a Location header")
    url = URL(loc)
    if not url.is_absolute():
        url = URL(ep.base).join(url)
    return url


def _range_start(content_range: str) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` answer."""
    unit, _, rest = content_range.partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _sniff_media_type(doc: Any) -> str:
    """Old registries may omit mediaType: tell an index from a manifest by its shape."""
    from podkit.images.oci import OCI_INDEX, OCI_MANIFEST

    if isinstance(doc, dict):
        if "manifests" in doc:
            return OCI_INDEX
        if "layers" in doc and "config" in doc:
            return OCI_MANIFEST
        if doc.get("schemaVersion") == 1:
            raise InvalidArgument("Docker schema 1 manifests are not supported (deprecated since 2017)")
    raise InvalidArgument("the registry sent a manifest of unknown type")
