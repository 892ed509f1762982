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

import json
import ssl
import time
import urllib.request
from dataclasses import dataclass

import aiohttp
from yarl import URL

from podkit._version import __version__
from podkit.errors import InvalidArgument, Unauthorized, Unavailable
from podkit.images.reference import Reference
from podkit.images.registry.auth import Challenge, Credentials
from podkit.images.registry.hosts import Endpoint, RegistryHosts, is_loopback
from podkit.images.registry.repository import MAX_MANIFEST, Progress, Repository

# Kept importable from here (tests use them): they moved with the split.
from podkit.images.registry.repository import _sniff_media_type as _sniff_media_type  # noqa: E402
from podkit.images.registry.transport import MAX_SMALL_BODY, StallLimit, read_limited
from podkit.images.registry.transport import _retry_after as _retry_after  # noqa: E402

__all__ = ["MAX_MANIFEST", "USER_AGENT", "Progress", "RegistryClient", "Repository", "read_limited"]

USER_AGENT = f"podkit/{__version__}"


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
        stall: StallLimit | None = None,
    ) -> None:
        self.hosts = hosts or RegistryHosts()
        self.stall = stall or StallLimit()
        self.retries = retries
        self.backoff = backoff
        self.chunk_size = chunk_size  # uploads bigger than this go in PATCH chunks
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}
        self._ssl: dict[str, ssl.SSLContext] = {}  # by ca_file
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
        # Undocumented in typeshed, but public in urllib.request since Python 2.
        if urllib.request.proxy_bypass_environment(host, self._proxies):  # type: ignore[attr-defined]
            return None
        return self._proxies[url.scheme]

    def ssl_for(self, ep: Endpoint) -> ssl.SSLContext | bool:
        """aiohttp's ``ssl`` argument for an endpoint: default verification, none
        (``insecure``), or a context that also trusts the configured CA file."""
        if not ep.verify_tls:
            return False
        if not ep.ca_file:
            return True  # aiohttp: verify against the system CAs
        ctx = self._ssl.get(ep.ca_file)
        if ctx is None:
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
        tls = self.ssl_for(ep)
        try:
            if creds.identitytoken:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identitytoken,
                    "service": service,
                    "client_id": "podkit",
                    "scope": scope,
                }
                req = self.session.post(url, data=form, ssl=tls, proxy=self.proxy_for(url))
            else:
                # One scope parameter per scope, as docker sends them (the OAuth2 form
                # above joins them with spaces instead).
                q = [("service", service)] if service else []
                q += [("scope", sc) for sc in scopes]
                hdrs = {"Authorization": creds.basic()} if creds.username else {}
                req = self.session.get(url.update_query(q), headers=hdrs, ssl=tls, proxy=self.proxy_for(url))
            async with req as resp:
                # bounded: a token is small, and a hostile token server must not fill memory
                body = await read_limited(resp, MAX_SMALL_BODY, self.stall, f"{ep.host}: token answer")
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
        except (ValueError, AttributeError, RecursionError):
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
