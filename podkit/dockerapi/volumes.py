"""Volume endpoints: create, list, inspect, delete, prune."""

from __future__ import annotations

import asyncio

from aiohttp import web

from podkit.dockerapi import views
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, body, filters, flag, json_response, no_content, volumes
from podkit.errors import InvalidArgument, NotFound
from podkit.prune import VOLUME_KEYS, PruneFilters

routes = Routes()


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.StreamResponse:
    b = await body(request)
    svc = volumes(request)
    name = b.get("Name") or None
    if name is not None and not isinstance(name, str):
        raise InvalidArgument("Name must be a string")
    if b.get("ClusterVolumeSpec"):
        raise InvalidArgument("cluster volumes need swarm: not supported by podkit")
    # docker returns the existing volume when one of that name exists.
    v = await asyncio.to_thread(
        svc.create,
        NAMESPACE,
        name,
        labels=b.get("Labels") or None,
        driver=str(b.get("Driver") or "local"),
        options=b.get("DriverOpts") or None,
        exist_ok=True,
    )
    return json_response(views.volume(v), status=201)


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.StreamResponse:
    f = filters(request)
    unknown = sorted(set(f) - {"dangling", "name", "label", "driver"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    driver = f.pop("driver", None)
    vols = await asyncio.to_thread(volumes(request).list, NAMESPACE, f or None)
    if driver:
        vols = [v for v in vols if v.get("driver") in driver]
    return json_response({"Volumes": [views.volume(v) for v in vols], "Warnings": []})


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not volumes(request).exists(NAMESPACE, name):
        raise NotFound(f"get {name}: no such volume")
    return name


@routes.get("/volumes/{name}")
async def inspect_volume(request: web.Request) -> web.StreamResponse:
    return json_response(views.volume(volumes(request).inspect(NAMESPACE, _name(request))))


@routes.delete("/volumes/{name}")
async def remove_volume(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    svc = volumes(request)
    if not svc.exists(NAMESPACE, name):
        if flag(request, "force"):
            return no_content()
        raise NotFound(f"get {name}: no such volume")
    await asyncio.to_thread(svc.remove, NAMESPACE, name, flag(request, "force"))
    return no_content()


@routes.post("/volumes/prune")
async def prune_volumes(request: web.Request) -> web.StreamResponse:
    # docker (API >= 1.42) prunes only anonymous volumes unless all=true.
    f = PruneFilters.parse(filters(request), VOLUME_KEYS, "volume prune")
    svc = volumes(request)
    sizes = {}
    for v in await asyncio.to_thread(svc.list, NAMESPACE):
        if not v.get("in_use_by") and (f.all or v.get("anonymous")) and f.keeps(v.get("labels")):
            from podkit.dockerapi.system import _du

            sizes[v["name"]] = await asyncio.to_thread(_du, v["mountpoint"])
    removed = await asyncio.to_thread(svc.prune, NAMESPACE, False, f)
    return json_response(
        {"VolumesDeleted": removed or None, "SpaceReclaimed": sum(sizes.get(n, 0) for n in removed)}
    )
