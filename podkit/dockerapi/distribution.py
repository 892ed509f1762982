"""Registry endpoints: pull (``POST /images/create``), push, ``/distribution/{name}/json``.

Progress goes out as docker's JSON lines (``status``, ``id``, ``progressDetail``);
a failure after the stream began is an ``errorDetail`` line, as docker sends it.
Credentials come in ``X-Registry-Auth`` (base64url JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from podkit.dockerapi import views
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import (
    NAMESPACE,
    NotImplementedYet,
    check_platform,
    images,
    json_response,
    registry,
)
from podkit.errors import InvalidArgument, NotFound, PodkitError

log = logging.getLogger(__name__)
routes = Routes()


def _creds(request: web.Request) -> Any:
    from podkit.images.registry.auth import Credentials, decode_header

    header = request.headers.get("X-Registry-Auth")
    if not header:
        return Credentials()
    try:
        return decode_header(header)
    except PodkitError:
        # docker sends "e30=" ({}) or garbage when it has nothing: no credentials.
        return Credentials()


def _progress(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": d.get("status", "")}
    if d.get("id"):
        out["id"] = d["id"]
    if "current" in d or "total" in d:
        cur, total = int(d.get("current") or 0), int(d.get("total") or 0)
        out["progressDetail"] = {"current": cur, "total": total}
        if total:
            bar = int(50 * min(cur, total) / total)
            out["progress"] = (
                f"[{'=' * bar}{'>' if bar < 50 else ''}{' ' * max(0, 49 - bar)}] {cur}B/{total}B"
            )
    else:
        out["progressDetail"] = {}
    return out


async def _stream(
    request: web.Request,
    work: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]],
    done: Callable[[Any], list[dict[str, Any]]],
) -> web.StreamResponse:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(work(queue.put_nowait))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    async def send(d: dict[str, Any]) -> None:
        await resp.write(json.dumps(d).encode() + b"\r\n")

    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await send(_progress(getter.result()))
                continue
            getter.cancel()
            while not queue.empty():
                await send(_progress(queue.get_nowait()))
            exc = task.exception()
            if exc is None:
                for line in done(task.result()):
                    await send(line)
            else:
                msg = exc.message if isinstance(exc, PodkitError) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, PodkitError):
                    log.error("docker API %s failed", request.path, exc_info=exc)
                await send({"errorDetail": {"message": msg}, "error": msg})
            break
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away: the operation is cancelled below, as with docker
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return resp


def _ref(name: str, tag: str | None) -> str:
    if not tag:
        return name
    if tag.startswith("sha256:"):
        return f"{name}@{tag}"
    last = name.rsplit("/", 1)[-1]
    if ":" in last or "@" in last:
        return name
    return f"{name}:{tag}"


@routes.post("/images/create")
async def create_image(request: web.Request) -> web.StreamResponse:
    q = request.query
    if q.get("fromSrc"):
        return await _import(request)
    name = q.get("fromImage")
    if not name:
        raise InvalidArgument("fromImage or fromSrc is required")
    ref = _ref(name, q.get("tag"))
    platform = q.get("platform") or None
    creds = _creds(request)
    reg = registry(request)
    existed: list[bool] = []

    async def work(emit: Callable[[dict[str, Any]], None]) -> Any:
        try:
            before = images(request).get(NAMESPACE, ref)
            existed.append(True)
            before_id = before.id
        except (NotFound, InvalidArgument):
            before_id = ""
        img = await reg.pull(NAMESPACE, ref, platform=platform, creds=creds, emit=emit)
        return img, before_id

    def done(result: Any) -> list[dict[str, Any]]:
        img, before_id = result
        shown = views.familiar(img.name) if hasattr(img, "name") else ref
        if before_id and before_id == getattr(img, "id", ""):
            return [{"status": f"Status: Image is up to date for {shown}"}]
        return [{"status": f"Status: Downloaded newer image for {shown}"}]

    return await _stream(request, work, done)


async def _import(request: web.Request) -> web.StreamResponse:
    from podkit.dockerapi.images import receive_blob
    from podkit.images.importer import Importer

    q = request.query
    if q["fromSrc"] != "-":
        raise NotImplementedYet(
            "importing from a URL is not supported by podkit: send the tarball (fromSrc=-)"
        )
    name = _ref(q["repo"], q.get("tag")) if q.get("repo") else None
    digest = await receive_blob(request)

    async def work(emit: Callable[[dict[str, Any]], None]) -> Any:
        return await Importer(images(request)).import_blob(
            NAMESPACE, digest, name=name, changes=q.getall("changes", []), message=q.get("message", "")
        )

    def done(result: Any) -> list[dict[str, Any]]:
        return [{"status": img.id} for img in result]

    return await _stream(request, work, done)


@routes.post("/images/{name:.+}/push")
async def push_image(request: web.Request) -> web.StreamResponse:
    ref = _ref(request.match_info["name"], request.query.get("tag"))
    try:
        img = images(request).get(NAMESPACE, ref)
    except NotFound:
        raise NotFound(f"An image does not exist locally with the tag: {ref}") from None
    check_platform(request, img, ref, "platform", (1, 46))
    creds = _creds(request)
    reg = registry(request)

    async def work(emit: Callable[[dict[str, Any]], None]) -> Any:
        return await reg.push(NAMESPACE, ref, creds=creds, emit=emit)

    def done(result: Any) -> list[dict[str, Any]]:
        aux = {}
        if isinstance(result, dict):
            aux = {k: result[k] for k in ("Tag", "Digest", "Size") if k in result}
            if not aux and result.get("digest"):
                aux = {
                    "Tag": request.query.get("tag") or "latest",
                    "Digest": result["digest"],
                    "Size": result.get("size", 0),
                }
        return [{"progressDetail": {}, "aux": aux}] if aux else []

    return await _stream(request, work, done)


@routes.get("/distribution/{name:.+}/json")
async def distribution_inspect(request: web.Request) -> web.StreamResponse:
    info = await registry(request).inspect(request.match_info["name"], creds=_creds(request))
    platforms = []
    for p in info.get("platforms") or []:
        parts = str(p).split("/")
        platforms.append(
            {
                "os": parts[0],
                "architecture": parts[1] if len(parts) > 1 else "",
                **({"variant": parts[2]} if len(parts) > 2 else {}),
            }
        )
    desc = info.get("descriptor") or {}
    return json_response(
        {
            "Descriptor": {
                "mediaType": desc.get("mediaType") or desc.get("media_type"),
                "digest": desc.get("digest"),
                "size": desc.get("size"),
            },
            "Platforms": platforms,
        }
    )
