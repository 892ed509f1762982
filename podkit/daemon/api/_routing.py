"""Route declarations with enough metadata to publish an OpenAPI document.

Handlers take a ``Ctx`` and return plain data (serialised as JSON), ``None``
(204), or an aiohttp response for streams. Errors are raised as ``PodkitError``
and turned into ``{"error": {...}}`` by the server's middleware.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.errors import InvalidArgument

if TYPE_CHECKING:
    from podkit.daemon.services import Services

NAMESPACE_HEADER = "X-Podkit-Namespace"
_NS_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")


class Ctx:
    """What a handler needs: the request, the namespace, the services."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.services: Services = request.app["services"]
        ns = request.headers.get(NAMESPACE_HEADER) or request.query.get("namespace") or "default"
        if not _NS_RE.match(ns):
            raise InvalidArgument(
                f"invalid namespace {ns!r}: use lowercase letters, digits, '.', '_' or '-'"
            )
        self.ns = ns

    @property
    def match(self) -> dict[str, str]:
        return dict(self.request.match_info)

    @property
    def query(self) -> Any:
        return self.request.query

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.request.query.get(name)
        if v is None:
            return default
        return v.lower() in ("1", "true", "yes", "on")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        v = self.request.query.get(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise InvalidArgument(f"query parameter {name!r} must be an integer, got {v!r}") from None

    async def json(self) -> Any:
        if not self.request.can_read_body:
            return {}
        try:
            return await self.request.json()
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"request body is not valid JSON: {e}") from None

    async def stream(self, items: AsyncIterator[Any], status: int = 200) -> web.StreamResponse:
        """Send an async iterator as newline-delimited JSON, flushing each line."""
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/x-ndjson"})
        resp.enable_chunked_encoding()
        await resp.prepare(self.request)
        async for item in items:
            await resp.write(json.dumps(item, separators=(",", ":")).encode() + b"\n")
        await resp.write_eof()
        return resp


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    params: dict[str, str] = field(default_factory=dict)  # query params -> description
    body: dict[str, Any] | None = None  # JSON schema of the request body
    response: dict[str, Any] | None = None  # JSON schema of the response
    stream: bool = False  # ndjson stream
    status: int = 200
    tag: str = ""


class Router:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def route(self, method: str, path: str, summary: str, **kw: Any) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append(Route(method, path, fn, summary, tag=self.tag, **kw))
            return fn

        return deco

    def get(self, path: str, summary: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, summary, **kw)

    def post(self, path: str, summary: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, summary, **kw)

    def put(self, path: str, summary: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, summary, **kw)

    def delete(self, path: str, summary: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, summary, **kw)
