"""Image endpoints: list, inspect, history, tag, delete, prune, save (get), load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.dockerapi import views
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import (
    NAMESPACE,
    NotImplementedYet,
    api_version,
    check_platform,
    events,
    filters,
    flag,
    images,
    json_response,
    parse_time,
    records,
    services,
)
from podkit.errors import InvalidArgument, NotFound, PodkitError
from podkit.prune import IMAGE_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService

routes = Routes()


def _get(request: web.Request, ref: str) -> Any:
    try:
        return images(request).get(NAMESPACE, ref)
    except NotFound:
        raise NotFound(f"No such image: {ref}") from None


def _glob(pattern: str) -> re.Pattern[str]:
    """A reference filter pattern: Go's path.Match, where ``*`` and ``?`` stop at ``/``."""
    parts = re.split(r"(\*|\?)", pattern)
    return re.compile("".join("[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p) for p in parts))


def _matches_reference(img: Any, pattern: str) -> bool:
    if img.dangling:
        return False
    names = {img.name, views.familiar(img.name)}
    if ":" not in pattern.rsplit("/", 1)[-1]:  # no tag in the pattern: match any tag
        names |= {n.rsplit(":", 1)[0] for n in names}
    rx = _glob(pattern)
    return any(rx.fullmatch(n) for n in names)


def _groups(imgs: list[Any]) -> dict[str, list[Any]]:
    by_id: dict[str, list[Any]] = {}
    for img in imgs:
        by_id.setdefault(img.id, []).append(img)
    return by_id


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.StreamResponse:
    svc = images(request)
    f = filters(request)
    unknown = sorted(set(f) - {"reference", "dangling", "label", "before", "since", "until"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    imgs = await asyncio.to_thread(svc.list, NAMESPACE)
    if f.get("reference"):
        imgs = [i for i in imgs if any(_matches_reference(i, r) for r in f["reference"])]
    groups = _groups(imgs)
    if f.get("dangling"):
        want = f["dangling"][-1].lower() in ("1", "true")
        groups = {k: g for k, g in groups.items() if all(i.dangling for i in g) == want}
    for lab in f.get("label") or []:
        k, eq, v = lab.partition("=")

        def has(g: list[Any], k: str = k, eq: str = eq, v: str = v) -> bool:
            labels = (g[0].config.get("config") or {}).get("Labels") or {}
            return k in labels and (not eq or labels[k] == v)

        groups = {gid: g for gid, g in groups.items() if has(g)}
    for key in ("before", "since"):
        for ref in f.get(key) or []:
            pivot = _get(request, ref).created
            groups = {
                gid: g
                for gid, g in groups.items()
                if (g[0].created < pivot if key == "before" else g[0].created > pivot)
            }
    for u in f.get("until") or []:
        t = parse_time(u)
        groups = {gid: g for gid, g in groups.items() if g[0].created < t}
    version = api_version(request)
    used = await _containers_per_image(request) if version >= (1, 51) else {}
    out = await asyncio.to_thread(
        lambda: [views.image_summary(svc, g[0], g, version, used.get(g[0].id, 0)) for g in groups.values()]
    )
    out.sort(key=lambda d: d["Created"], reverse=True)
    return json_response(out)


async def _containers_per_image(request: web.Request) -> dict[str, int]:
    """How many containers (any state) use each image: images/json's Containers (1.51)."""
    svc: ContainerService | None = services(request).containers
    if svc is None:
        return {}
    counts: dict[str, int] = {}
    for rec in records(svc, await svc.list(NAMESPACE, all=True)):
        if not rec.infra:
            counts[rec.image_id] = counts.get(rec.image_id, 0) + 1
    return counts


@routes.get("/images/{name:.+}/json")
async def inspect_image(request: web.Request) -> web.StreamResponse:
    svc = images(request)
    img = _get(request, request.match_info["name"])
    check_platform(request, img, request.match_info["name"], "platform", (1, 49))
    group = [i for i in await asyncio.to_thread(svc.list, NAMESPACE) if i.id == img.id] or [img]
    return json_response(await asyncio.to_thread(views.image_inspect, svc, img, group, api_version(request)))


@routes.get("/images/{name:.+}/history")
async def image_history(request: web.Request) -> web.StreamResponse:
    img = _get(request, request.match_info["name"])
    check_platform(request, img, request.match_info["name"], "platform", (1, 48))
    history = list(img.config.get("history") or [])
    layers = list(img.layers)
    out: list[dict[str, Any]] = []
    li = 0
    for h in history:
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and li < len(layers):
            size = int(layers[li].size)
            li += 1
        created = 0
        with contextlib.suppress(ValueError, OverflowError):  # a malformed date shows as 0
            created = (
                int(parse_time(str(h.get("created") or "")[:26].rstrip("Z") + "Z")) if h.get("created") else 0
            )
        out.append(
            {
                "Id": "<missing>",
                "Created": created,
                "CreatedBy": h.get("created_by") or "",
                "Tags": None,
                "Size": size,
                "Comment": h.get("comment") or "",
            }
        )
    if not out:
        out.append(
            {
                "Id": img.id,
                "Created": int(img.created),
                "CreatedBy": "",
                "Tags": None,
                "Size": img.size,
                "Comment": "",
            }
        )
    out.reverse()
    out[0]["Id"] = img.id
    group = await asyncio.to_thread(images(request).list, NAMESPACE)
    out[0]["Tags"] = [views.familiar(i.name) for i in group if i.id == img.id and not i.dangling] or None
    return json_response(out)


@routes.post("/images/{name:.+}/tag")
async def tag_image(request: web.Request) -> web.StreamResponse:
    img = _get(request, request.match_info["name"])
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repository name is required (query parameter repo)")
    tag = request.query.get("tag") or "latest"
    target = f"{repo}:{tag}" if not tag.startswith("sha256:") else f"{repo}@{tag}"
    images(request).record(NAMESPACE, target, img.target, action="tag")
    return web.Response(status=201)


@routes.delete("/images/{name:.+}")
async def remove_image(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    svc = images(request)
    check_platform(request, _get(request, name), name, "platforms", (1, 50))
    results = await asyncio.to_thread(svc.remove, NAMESPACE, name, flag(request, "force"))
    if results:
        await asyncio.to_thread(svc.gc)
    return json_response(results)


@routes.post("/images/prune")
async def prune_images(request: web.Request) -> web.StreamResponse:
    # dangling=false is docker's -a; until and label(!) narrow what is removed
    f = PruneFilters.parse(filters(request), IMAGE_KEYS, "image prune")
    res = await asyncio.to_thread(images(request).prune, NAMESPACE, False, f)
    deleted = res.get("deleted") or []
    listed = [d if isinstance(d, dict) else {"Deleted": str(d)} for d in deleted]
    return json_response(
        {"ImagesDeleted": listed or None, "SpaceReclaimed": int(res.get("space_reclaimed") or 0)}
    )


@routes.get("/images/search")
async def search(request: web.Request) -> web.StreamResponse:
    raise NotImplementedYet("image search is not supported by podkit: search the registry's own interface")


# ------------------------------------------------------------- save / load
async def _save(request: web.Request, refs: list[str]) -> web.StreamResponse:
    from podkit.images.export import archive_chunks, plan_archive

    svc = images(request)
    imgs = [_get(request, r) for r in refs]
    for img, r in zip(imgs, refs, strict=True):
        check_platform(request, img, r, "platform", (1, 48))
    plan = await asyncio.to_thread(plan_archive, svc, NAMESPACE, imgs, refs, None)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    chunks = archive_chunks(svc, plan, "docker")
    try:
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        await chunks.aclose()
    await resp.write_eof()
    for img in imgs:
        events(request).publish(NAMESPACE, "image", "save", img.id, name=img.name)
    return resp


@routes.get("/images/get")
async def save_many(request: web.Request) -> web.StreamResponse:
    refs = request.query.getall("names", [])
    if not refs:
        raise InvalidArgument("no images named (query parameter names)")
    return await _save(request, refs)


@routes.get("/images/{name:.+}/get")
async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def receive_blob(request: web.Request) -> str:
    """Stream the request body into the content store; its digest."""
    from podkit.images.upload import receive_blob as receive

    return await receive(
        services(request).content,
        request.content.iter_chunked(1 << 20),
        "empty upload: send the archive as the request body",
    )


class _HostPlatform:
    """The platform podkit pulls and loads for, in an image's config terms."""

    @property
    def config(self) -> dict[str, str]:
        from podkit.images.oci import Platform

        p = Platform.host()
        return {"os": p.os, "architecture": p.architecture, "variant": p.variant or ""}


@routes.post("/images/load")
async def load(request: web.Request) -> web.StreamResponse:
    from podkit.images.importer import Importer

    # podkit loads an archive's images for this host's platform: a platform (1.48) names it
    check_platform(request, _HostPlatform(), "the archive", "platform", (1, 48))
    digest = await receive_blob(request)
    quiet = flag(request, "quiet")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    try:
        loaded = await Importer(images(request)).import_blob(NAMESPACE, digest, require_archive=True)
    except PodkitError as e:
        if quiet:
            raise
        await resp.prepare(request)
        await resp.write(
            json.dumps({"errorDetail": {"message": e.message}, "error": e.message}).encode() + b"\n"
        )
        await resp.write_eof()
        return resp
    await resp.prepare(request)
    for img in loaded:
        line = (
            f"Loaded image ID: {img.id}\n" if img.dangling else f"Loaded image: {views.familiar(img.name)}\n"
        )
        await resp.write(json.dumps({"stream": line}).encode() + b"\n")
    await resp.write_eof()
    return resp
