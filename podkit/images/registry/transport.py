"""The HTTP plumbing of a repository: authentication, retries with backoff, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import aiohttp
from yarl import URL

from podkit.errors import InvalidArgument, NotFound, PodkitError, Unauthorized, Unavailable
from podkit.images.registry.auth import Credentials, parse_challenges
from podkit.images.registry.hosts import Endpoint

if TYPE_CHECKING:
    from podkit.images.registry.client import RegistryClient

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_SMALL_BODY = 1 << 20  # token answers and error bodies: read no more than this
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# What a request sends: bytes, or a factory so that a retried upload starts again.
Body = Callable[[], object] | bytes | None


@dataclass(frozen=True)
class StallLimit:
    """A progress deadline for response bodies, like curl's --speed-time/--speed-limit.

    The socket read timeout alone lets a registry that drips a byte every 20 s keep a
    pull alive forever: a body must bring at least ``min_bytes`` in every ``window``
    seconds until it ends, or the read fails (Unavailable, naming the stall).
    """

    window: float = 60.0
    min_bytes: int = 64 << 10

    def reader(self, stream: aiohttp.StreamReader, what: str) -> StallGuard:
        return StallGuard(stream, self, what)


class StallGuard:
    """One body's reads under a StallLimit."""

    def __init__(self, stream: aiohttp.StreamReader, limit: StallLimit, what: str) -> None:
        self._stream = stream
        self._limit = limit
        self._what = what
        self._deadline = time.monotonic() + limit.window
        self._got = 0

    async def _guarded(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        while True:
            left = self._deadline - time.monotonic()
            if left <= 0:
                if self._got < self._limit.min_bytes:
                    raise Unavailable(
                        f"{self._what}: the registry sent {self._got} bytes in {self._limit.window:g}s "
                        f"(less than {self._limit.min_bytes}): the transfer stalled, giving up"
                    )
                self._deadline = time.monotonic() + self._limit.window
                self._got = 0
                continue
            try:
                async with asyncio.timeout(left) as cm:
                    data = await read()
            except TimeoutError:
                if cm.expired():
                    continue  # the window is over: judged at the top
                raise  # aiohttp's own socket read timeout
            self._got += len(data)
            return data

    async def readany(self) -> bytes:
        return await self._guarded(self._stream.readany)

    async def read(self, n: int) -> bytes:
        return await self._guarded(lambda: self._stream.read(n))


async def read_limited(
    resp: aiohttp.ClientResponse, limit: int, stall: StallLimit | None = None, what: str = "response"
) -> bytes:
    """The body up to ``limit`` bytes. (StreamReader.read(n) returns what is buffered,
    maybe far less than n: one call would cut a body that came in several chunks.)"""
    reader = (stall or StallLimit()).reader(resp.content, what)
    buf = bytearray()
    while len(buf) < limit:
        chunk = await reader.read(limit - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class Transient(Exception):
    """A failure worth retrying (connection broke, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RepositoryTransport:
    """Requests to one repository: endpoints (mirrors first), auth challenges, retries, errors.

    ``Repository`` (repository.py) builds the distribution API on it.
    """

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
        body: Body = None,
        what: str = "",
        retries: int | None = None,
    ) -> aiohttp.ClientResponse:
        """Send with auth and retries; the caller reads and releases the response.

        ``body`` may be a factory so that a retried upload starts from the beginning.
        """
        ssl = self.client.ssl_for(ep)
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
                err = Transient(f"{ep.host}: cannot connect: {e.os_error or e}")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                err = Transient(f"{ep.host}: {what or method} failed: {type(e).__name__}: {e}")
            else:
                if resp.status == 401 and authed < 2:
                    authenticated = await self._authenticate(ep, resp, hdrs.get("Authorization"))
                    resp.release()
                    if authenticated:
                        authed += 1
                        continue
                    raise Unauthorized(self._denied(what))
                if resp.status not in RETRY_STATUSES:
                    return resp
                err = Transient(
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
        # only the registry's words are wanted
        body = await read_limited(resp, MAX_SMALL_BODY, self.client.stall, f"{what}: error answer")
        resp.release()
        detail = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError, IndexError, KeyError, RecursionError):
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

    async def _each_endpoint(self, fn: Callable[[Endpoint], Awaitable[_T]]) -> _T:
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
