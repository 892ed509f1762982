"""Registry routes: pull, push, login.

Credentials travel in the ``X-Registry-Auth`` header (base64url JSON of
``{"username", "password"}`` or ``{"identitytoken"}``, as docker sends them) or in
the body's ``auth``; without either the daemon uses its own user's
``~/.docker/config.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from podkit.daemon.api._routing import Ctx, Router
from podkit.errors import Internal, InvalidArgument, PodkitError, is_no_space, no_space

if TYPE_CHECKING:
    from podkit.images.distribution import Registry
    from podkit.images.registry.auth import Credentials

T = TypeVar("T")
# What a streamed operation emits, and its last line.
Line = dict[str, Any]
Emit = Callable[[Line], None]

log = logging.getLogger(__name__)
router = Router("distribution")

AUTH_HEADER = "X-Registry-Auth"

_AUTH_SCHEMA = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "identitytoken": {"type": "string"},
    },
}
_PROGRESS_SCHEMA = {
    "type": "object",
    "description": "a progress line: {id, status, current, total}; the last line is "
    "{status: done, ...} or {error: {code, message}}",
}


def _registry(ctx: Ctx) -> Registry:
    return ctx.services.registry


def _credentials(ctx: Ctx, body: dict[str, Any]) -> Credentials:
    from podkit.images.registry.auth import Credentials, decode_header, entry_to_credentials

    auth = body.get("auth")
    if auth is not None:
        if not isinstance(auth, dict):
            raise InvalidArgument("'auth' must be an object with username/password or identitytoken")
        return entry_to_credentials(auth)
    header = ctx.request.headers.get(AUTH_HEADER)
    return decode_header(header) if header else Credentials()


async def _body(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return body


def _str_field(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise InvalidArgument(f"'{name}' is required")
        return None
    if not isinstance(v, str):
        raise InvalidArgument(f"'{name}' must be a string")
    return v


def _image_dict(image: object) -> dict[str, Any]:
    to_dict = getattr(image, "to_dict", None)
    if to_dict is not None:
        d: dict[str, Any] = to_dict()
        return d
    if dataclasses.is_dataclass(image) and not isinstance(image, type):
        return dataclasses.asdict(image)
    return dict(image) if isinstance(image, dict) else {"image": str(image)}


async def _run_streamed(
    ctx: Ctx, work: Callable[[Emit], Coroutine[Any, Any, T]], done: Callable[[T], Line]
) -> web.StreamResponse:
    """Run ``work(emit)`` and stream what it emits, then ``done(result)`` or an error line.

    If the client goes away the operation is cancelled, as with docker: at once, not at
    the next line it would be sent (a stalled pull sends none). Blobs a concurrent pull
    waits for are not lost with it: that pull fetches them itself (Puller._fetch_once).
    """
    queue: asyncio.Queue[Line] = asyncio.Queue()
    task = asyncio.create_task(work(queue.put_nowait))
    gone = asyncio.ensure_future(ctx.client_gone())

    async def lines() -> AsyncIterator[Line]:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task, gone}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            getter.cancel()
            if gone.done() and not task.done():
                log.info("%s: the client left; cancelling", ctx.request.path)
                return
            while not queue.empty():
                yield queue.get_nowait()
            exc = task.exception()
            if exc is None:
                yield done(task.result())
            elif isinstance(exc, PodkitError):
                yield exc.to_dict()
            elif is_no_space(exc):
                err = no_space(exc, ctx.services.config.root)
                log.warning("%s: %s", ctx.request.path, err.message)
                yield err.to_dict()
            else:
                log.error("%s failed", ctx.request.path, exc_info=exc)
                yield Internal(f"internal error: {type(exc).__name__}: {exc}").to_dict()
            return

    try:
        return await ctx.stream(lines())
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@router.post(
    "/images/pull",
    "Pull an image from a registry (ndjson progress)",
    body={
        "type": "object",
        "required": ["reference"],
        "properties": {
            "reference": {"type": "string"},
            "platform": {"type": "string", "description": "os/arch[/variant]"},
            "all_platforms": {"type": "boolean", "description": "fetch every platform of an index"},
            "auth": _AUTH_SCHEMA,
        },
    },
    response=_PROGRESS_SCHEMA,
    stream=True,
)
async def pull(ctx: Ctx) -> web.StreamResponse:
    from podkit.images import reference
    from podkit.images.oci import Platform

    body = await _body(ctx)
    ref_text = _str_field(body, "reference")
    platform = _str_field(body, "platform", required=False)
    ref = reference.parse(ref_text or "")  # refuse bad input before the stream starts
    if platform:
        Platform.parse(platform)
    all_platforms = body.get("all_platforms", False)
    if not isinstance(all_platforms, bool):
        raise InvalidArgument("'all_platforms' must be true or false")
    creds = _credentials(ctx, body)
    reg = _registry(ctx)
    ns = ctx.ns

    async def work(emit: Emit) -> Line:
        image = await reg.pull(
            ns, str(ref), platform=platform, creds=creds, emit=emit, all_platforms=all_platforms
        )
        # The image service publishes the "pull" event (for implicit pulls too).
        return _image_dict(image)

    return await _run_streamed(ctx, work, lambda d: {"status": "done", "image": d})


@router.post(
    "/images/push",
    "Push an image to a registry (ndjson progress)",
    body={
        "type": "object",
        "required": ["reference"],
        "properties": {"reference": {"type": "string"}, "auth": _AUTH_SCHEMA},
    },
    response=_PROGRESS_SCHEMA,
    stream=True,
)
async def push(ctx: Ctx) -> web.StreamResponse:
    from podkit.images import reference

    body = await _body(ctx)
    ref = reference.parse(_str_field(body, "reference") or "")
    creds = _credentials(ctx, body)
    reg = _registry(ctx)
    ns = ctx.ns
    # Refuse an unknown image with a plain 404 rather than inside the stream.
    img = ctx.services.images.get(ns, str(ref)) if ctx.services.images is not None else None
    if asyncio.iscoroutine(img):
        await img

    async def work(emit: Emit) -> Line:
        result: Line = await reg.push(ns, str(ref), creds=creds, emit=emit)
        ctx.services.events.publish(ns, "image", "push", str(ref), digest=result["digest"])
        return result

    return await _run_streamed(ctx, work, lambda r: {"status": "done", **r})


@router.get(
    "/distribution/inspect",
    "What a registry holds under a reference (descriptor, manifest, platforms), without pulling",
    params={"ref": "image reference"},
    response={
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "descriptor": {"type": "object"},
            "platforms": {"type": "array", "items": {"type": "string"}},
            "manifest": {"type": "object"},
        },
    },
)
async def inspect(ctx: Ctx) -> dict[str, Any]:
    from podkit.images import reference

    ref = ctx.query.get("ref") or ""
    if not ref:
        raise InvalidArgument("query parameter 'ref' is required")
    reference.parse(ref)
    return await _registry(ctx).inspect(ref, creds=_credentials(ctx, {}))


@router.post(
    "/auth/login",
    "Check credentials against a registry",
    body={
        "type": "object",
        "required": ["serveraddress"],
        "properties": {
            "serveraddress": {"type": "string"},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "identitytoken": {"type": "string"},
        },
    },
    response={
        "type": "object",
        "properties": {"status": {"type": "string"}, "serveraddress": {"type": "string"}},
    },
)
async def login(ctx: Ctx) -> dict[str, Any]:
    from podkit.images.distribution import normalise_registry
    from podkit.images.registry.auth import Credentials

    body = await _body(ctx)
    server = normalise_registry(_str_field(body, "serveraddress") or "")
    creds = Credentials(
        username=_str_field(body, "username", required=False) or "",
        password=_str_field(body, "password", required=False) or "",
        identitytoken=_str_field(body, "identitytoken", required=False) or "",
    )
    if creds.username and not creds.password:
        raise InvalidArgument("a password is required with a username")
    await _registry(ctx).login(server, creds)
    return {"status": "Login Succeeded", "serveraddress": server}
