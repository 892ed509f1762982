"""Route declarations with enough metadata to publish an OpenAPI document.

Handlers take a ``Ctx`` and return plain data (serialised as JSON), ``None``
(204), or an aiohttp response for streams. Errors are raised as ``PodkitError``
and turned into ``{"error": {...}}`` by the server's middleware.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, overload

from aiohttp import web
from multidict import MultiMapping

from podkit.daemon.leaving import client_gone, unless_client_leaves
from podkit.errors import InvalidArgument, TooLarge
from podkit.limits import BODY_READ_TIMEOUT, JSON_BODY_MAX

if TYPE_CHECKING:
    from podkit.daemon.services import Services

NAMESPACE_HEADER = "X-Podkit-Namespace"
_NS_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")


_T = TypeVar("_T")


class Ctx:
    """What a handler needs: the request, the namespace, the services."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.services: Services = request.app["services"]
        ns = request.headers.get(NAMESPACE_HEADER) or request.query.get("namespace") or "default"
        if not _NS_RE.fullmatch(ns):
            raise InvalidArgument(f"invalid namespace {ns!r}: use lowercase letters, digits, '.', '_' or '-'")
        self.ns = ns
        # The route's declared body schema; json() checks what it can cheaply (see _check_body).
        self.body_schema: dict[str, Any] | None = None
        self.max_body = JSON_BODY_MAX  # the route's, set by the server

    @property
    def match(self) -> dict[str, str]:
        return dict(self.request.match_info)

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.request.query.get(name)
        if v is None:
            return default
        return v.lower() in ("1", "true", "yes", "on")

    @overload
    def int_arg(self, name: str, default: int) -> int: ...

    @overload
    def int_arg(self, name: str, default: None = None) -> int | None: ...

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        v = self.request.query.get(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise InvalidArgument(f"query parameter {name!r} must be an integer, got {v!r}") from None

    async def read_body(self) -> bytes:
        """The whole request body, refused (413) over the route's ``max_body``."""
        limit = self.max_body
        if self.request.content_length is not None and self.request.content_length > limit:
            raise TooLarge(
                f"request body of {self.request.content_length} bytes: this route takes at most {limit}"
            )
        data = bytearray()
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                while True:  # chunked bodies announce no length: count as they come
                    chunk = await self.request.content.read(limit + 1 - len(data))
                    if not chunk:
                        return bytes(data)
                    data += chunk
                    if len(data) > limit:
                        raise TooLarge(f"request body over {limit} bytes: this route takes at most {limit}")
        except TimeoutError:
            raise InvalidArgument(
                f"request body not received within {BODY_READ_TIMEOUT:.0f}s ({len(data)} bytes came)"
            ) from None

    # The body as json.loads gives it (Any): each handler checks what it reads.
    async def json(self) -> Any:
        if not self.request.can_read_body:
            return {}
        raw = await self.read_body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"request body is not valid JSON: {e}") from None
        except RecursionError:
            raise InvalidArgument("request body is not valid JSON: nested too deeply") from None
        if self.body_schema is not None:
            _check_body(body, self.body_schema)
        return body

    async def client_gone(self, every: float = 0.5) -> None:
        """Return once the client has closed its connection (podkit.daemon.leaving)."""
        await client_gone(self.request, every)

    async def unless_client_leaves(self, work: Awaitable[_T], what: str) -> _T:
        """``await work``, cancelled as soon as the client leaves (Unavailable then):
        see podkit.daemon.leaving."""
        return await unless_client_leaves(self.request, work, what)

    async def stream(self, items: AsyncIterator[object], status: int = 200) -> web.StreamResponse:
        """Send an async iterator as newline-delimited JSON, flushing each line."""
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/x-ndjson"})
        resp.enable_chunked_encoding()
        await resp.prepare(self.request)
        try:
            async for item in items:
                await resp.write(json.dumps(item, separators=(",", ":")).encode() + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            # The client went away (`podkit events` or `logs -f` ended with ^C): the
            # normal end of a stream, not a server error to log with a traceback.
            pass
        finally:
            # Run the producer's clean-up (unsubscribe, close files) now, not at GC.
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        return resp


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def _is_type(value: object, want: str | list[str]) -> bool:
    for t in [want] if isinstance(want, str) else want:
        py = _JSON_TYPES.get(t)
        if py is None:
            return True  # a type this check does not know: leave it to the handler
        # bool is an int in Python, never in JSON
        if isinstance(value, py) and not (isinstance(value, bool) and t in ("integer", "number")):
            return True
    return False


def _check_body(body: object, schema: dict[str, Any]) -> None:
    """Refuse a body whose top-level type or declared property types are wrong.

    Handlers index into the body as the schema promises; without this a ``[]`` or a
    number where an object or string was declared surfaced as a 500. Nulls pass (the
    handlers read them as "not given"); nested items are left to the handlers.
    """
    want = schema.get("type")
    if want and not _is_type(body, want):
        raise InvalidArgument(f"request body must be a JSON {want}, got {type(body).__name__}")
    if not isinstance(body, dict):
        return
    for name, prop in (schema.get("properties") or {}).items():
        v = body.get(name)
        t = prop.get("type") if isinstance(prop, dict) else None
        if v is not None and t and not _is_type(v, t):
            raise InvalidArgument(f"field {name!r} must be of JSON type {t}, got {json.dumps(v)[:80]}")


# A handler returns JSON-able data, None (204) or an aiohttp response (streams).
Handler = Callable[[Ctx], Awaitable[object]]


class RouteOptions(TypedDict, total=False):
    params: dict[str, str]
    body: dict[str, Any]
    response: dict[str, Any]
    stream: bool
    status: int
    max_body: int


H = TypeVar("H", bound=Handler)


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
    max_body: int = JSON_BODY_MAX  # bytes of a JSON body; streamed uploads do not count
    tag: str = ""


class Router:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        stream: bool = False,
        status: int = 200,
        max_body: int = JSON_BODY_MAX,
    ) -> Callable[[H], H]:
        """Declare a route (the metadata goes into the OpenAPI document)."""

        def deco(fn: H) -> H:
            self.routes.append(
                Route(
                    method,
                    path,
                    fn,
                    summary,
                    params or {},
                    body,
                    response,
                    stream,
                    status,
                    max_body,
                    self.tag,
                )
            )
            return fn

        return deco

    def get(self, path: str, summary: str, **kw: Unpack[RouteOptions]) -> Callable[[H], H]:
        return self.route("GET", path, summary, **kw)

    def post(self, path: str, summary: str, **kw: Unpack[RouteOptions]) -> Callable[[H], H]:
        return self.route("POST", path, summary, **kw)

    def put(self, path: str, summary: str, **kw: Unpack[RouteOptions]) -> Callable[[H], H]:
        return self.route("PUT", path, summary, **kw)

    def delete(self, path: str, summary: str, **kw: Unpack[RouteOptions]) -> Callable[[H], H]:
        return self.route("DELETE", path, summary, **kw)
