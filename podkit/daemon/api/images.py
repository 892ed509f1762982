"""Image routes: list, inspect, tag, remove, prune, import/load (streamed upload), save
(streamed download). Pull and push live in distribution.py."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.daemon.api._routing import Ctx, Router
from podkit.daemon.api.volumes import filters_arg
from podkit.errors import InvalidArgument, PodkitError
from podkit.prune import IMAGE_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.images.service import Image, ImageService

log = logging.getLogger(__name__)

router = Router("images")

_IMAGE = {"type": "object", "description": "an image (see podkit.images.service.Image.to_dict)"}


def _svc(ctx: Ctx) -> ImageService:
    return ctx.services.images


def _matches_reference(img: Image, pattern: str) -> bool:
    """docker's reference filter: a glob over the familiar or full name (tag optional)."""
    if img.dangling:
        return False
    fam = img.to_dict()["familiar"]
    candidates = {img.name, fam, fam.rsplit(":", 1)[0], img.repository}
    if ":" not in pattern.rsplit("/", 1)[-1]:
        candidates |= {c.rsplit(":", 1)[0] for c in candidates}
    rx = _glob_re(pattern)
    return any(rx.fullmatch(c) for c in candidates)


def _glob_re(pattern: str) -> re.Pattern[str]:
    """Go's path.Match, as docker's reference filter uses: '*' and '?' stop at '/'."""
    out = []
    for part in re.split(r"(\*|\?|\[[^\]]*\])", pattern):
        if part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            body = part[1:-1]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _has_label(img: Image, key: str, value: str) -> bool:
    labels = dict(((img.config.get("config") or {}).get("Labels")) or {})
    labels.update(img.labels)
    return key in labels and (not value or labels[key] == value)


@router.get(
    "/images",
    "List images",
    params={
        "all": "include intermediate images (none exist yet: kept for docker parity)",
        "filter": "reference=<glob> | dangling=true|false | before=<image> | since=<image>; repeatable",
    },
    response={"type": "array", "items": _IMAGE},
)
async def list_images(ctx: Ctx) -> list[dict[str, Any]]:
    svc = _svc(ctx)
    images = await asyncio.to_thread(svc.list, ctx.ns)
    for f in ctx.request.query.getall("filter", []):
        key, sep, value = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad filter {f!r}: want key=value")
        if key == "reference":
            images = [i for i in images if _matches_reference(i, value)]
        elif key == "dangling":
            want = value.lower() in ("1", "true", "yes")
            images = [i for i in images if i.dangling == want]
        elif key in ("before", "since"):
            ref = svc.get(ctx.ns, value)
            images = [
                i for i in images if (i.created < ref.created if key == "before" else i.created > ref.created)
            ]
        elif key == "label":
            k, _, v = value.partition("=")
            images = [i for i in images if _has_label(i, k, v)]
        else:
            raise InvalidArgument(f"unknown filter {key!r}: use reference, dangling, before, since or label")
    # Sizes may walk a layer's tree the first time: in a thread.
    return await asyncio.to_thread(lambda: [_with_disk_facts(svc, i) for i in images])


def _with_disk_facts(svc: ImageService, img: Image) -> dict[str, Any]:
    d: dict[str, Any] = img.to_dict()
    d["unpacked_size"] = svc.unpacked_size(img)
    d["unpacked"] = d["unpacked_size"] > 0 or svc.is_unpacked(img)
    return d


@router.get(
    "/images/inspect",
    "Inspect one image",
    params={"ref": "name, id or name@digest", "platform": "os/arch for an index"},
    response=_IMAGE,
)
async def inspect(ctx: Ctx) -> dict[str, Any]:
    from podkit.images.oci import Platform

    ref = ctx.query.get("ref") or ""
    plat = Platform.parse(ctx.query["platform"]) if ctx.query.get("platform") else None
    svc = _svc(ctx)
    img = await asyncio.to_thread(svc.get, ctx.ns, ref, plat)
    d = await asyncio.to_thread(_with_disk_facts, svc, img)
    d["names"] = await asyncio.to_thread(svc.names_of, ctx.ns, img.id)
    return d


@router.post(
    "/images/tag",
    "Give an image another name",
    body={"type": "object", "properties": {"source": {"type": "string"}, "target": {"type": "string"}}},
    response=_IMAGE,
)
async def tag(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    src, dst = body.get("source"), body.get("target")
    if not src or not dst:
        raise InvalidArgument("tag needs a source and a target")
    svc = _svc(ctx)
    img = svc.get(ctx.ns, src)
    return svc.record(ctx.ns, dst, img.target, action="tag").to_dict()


@router.post(
    "/images/remove",
    "Remove images (docker rmi)",
    body={"type": "object", "properties": {"refs": {"type": "array"}, "force": {"type": "boolean"}}},
    response={"type": "object"},
)
async def remove(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    refs = body.get("refs") or ([body["ref"]] if body.get("ref") else [])
    if not refs:
        raise InvalidArgument("remove needs at least one image")
    if not all(isinstance(r, str) for r in refs):
        raise InvalidArgument("refs must be a list of image names or ids")
    svc = _svc(ctx)
    results: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []
    for ref in refs:
        try:
            results.extend(await asyncio.to_thread(svc.remove, ctx.ns, ref, bool(body.get("force"))))
        except PodkitError as e:  # reported per image, like docker
            errors.append({"ref": ref, "code": e.code, "message": e.message})
    stats = await asyncio.to_thread(svc.gc) if results else {"bytes": 0}
    return {"results": results, "errors": errors, "space_reclaimed": stats["bytes"]}


@router.post(
    "/images/prune",
    "Remove dangling (or, with all, all unused) images and free space",
    params={"filters": "JSON: dangling, until, label, label!"},
    body={"type": "object", "properties": {"all": {"type": "boolean"}}},
    response={"type": "object"},
)
async def prune(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    f = PruneFilters.parse(filters_arg(ctx), IMAGE_KEYS, "image prune")
    return await asyncio.to_thread(_svc(ctx).prune, ctx.ns, bool(body.get("all")), f)


async def _receive(ctx: Ctx) -> str:
    """Stream the request body into the content store; returns its digest."""
    from podkit.images.upload import receive_blob

    return await receive_blob(
        ctx.services.content,
        ctx.request.content.iter_chunked(1 << 20),
        "empty upload: send the tarball or archive as the request body",
    )


async def _import(ctx: Ctx, require_archive: bool) -> dict[str, Any]:
    from podkit.images.importer import Importer
    from podkit.images.oci import Platform

    q = ctx.request.query
    plat = Platform.parse(q["platform"]) if q.get("platform") else None
    name = q.get("name") or None
    if name:
        from podkit.images import reference

        reference.parse(name)  # refuse a bad name before receiving the upload
    digest = await _receive(ctx)
    images = await Importer(_svc(ctx)).import_blob(
        ctx.ns,
        digest,
        name=name,
        changes=q.getall("change", []),
        message=q.get("message", ""),
        platform=plat,
        unpack=ctx.flag("unpack", True),
        require_archive=require_archive,
    )
    return {"images": [i.to_dict() for i in images]}


@router.post(
    "/images/import",
    "Import a root file system tarball, a docker-save archive or an OCI archive "
    "(request body: the file, streamed)",
    params={
        "name": "name for the image",
        "change": "Dockerfile instruction (repeatable)",
        "message": "history comment",
        "platform": "os/arch",
        "unpack": "default true",
    },
    response={"type": "object"},
)
async def import_(ctx: Ctx) -> dict[str, Any]:
    return await _import(ctx, require_archive=False)


@router.post(
    "/images/load",
    "Load a docker-save or OCI archive (request body: the archive, streamed)",
    params={"name": "override the names in the archive", "platform": "os/arch", "unpack": "default true"},
    response={"type": "object"},
)
async def load(ctx: Ctx) -> dict[str, Any]:
    return await _import(ctx, require_archive=True)


@router.get(
    "/images/save",
    "Export images as a tar archive (streamed)",
    params={
        "ref": "image (repeatable)",
        "format": "docker (docker-save with an OCI layout, default) | oci (OCI layout only)",
        "platform": "os/arch: only this platform of an index",
    },
)
async def save(ctx: Ctx) -> web.StreamResponse:
    from podkit.images.export import archive_chunks, plan_archive
    from podkit.images.oci import Platform

    refs = ctx.request.query.getall("ref", [])
    if not refs:
        raise InvalidArgument("save needs at least one image")
    fmt = ctx.query.get("format", "docker")
    if fmt not in ("docker", "oci"):
        raise InvalidArgument(f"unknown archive format {fmt!r}: use docker or oci")
    plat = Platform.parse(ctx.query["platform"]) if ctx.query.get("platform") else None
    svc = _svc(ctx)
    images = [svc.get(ctx.ns, r) for r in refs]
    # Everything checked before any byte is sent: a broken stream says little.
    plan = await asyncio.to_thread(plan_archive, svc, ctx.ns, images, refs, plat)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(ctx.request)
    chunks = archive_chunks(svc, plan, fmt)
    try:
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        await chunks.aclose()
    await resp.write_eof()
    for img in images:
        ctx.services.events.publish(ctx.ns, "image", "save", img.id, name=img.name)
    return resp
