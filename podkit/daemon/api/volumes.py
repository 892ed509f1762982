"""Volume routes: create, list, inspect, remove, prune."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from podkit.daemon.api._routing import Ctx, Router
from podkit.errors import InvalidArgument
from podkit.prune import VOLUME_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.containers.volumes import VolumeService

router = Router("volumes")

_VOLUME = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "driver": {"type": "string"},
        "mountpoint": {"type": "string"},
        "created": {"type": "number"},
        "labels": {"type": "object"},
        "anonymous": {"type": "boolean"},
        "in_use_by": {"type": "array", "items": {"type": "string"}},
    },
}


def _svc(ctx: Ctx) -> VolumeService:
    return ctx.services.volumes


def filters_arg(ctx: Ctx) -> dict[str, list[str]]:
    raw = ctx.query.get("filters")
    if not raw:
        return {}
    try:
        f = json.loads(raw)
    except ValueError:
        raise InvalidArgument("filters must be a JSON object of lists") from None
    if not isinstance(f, dict):
        raise InvalidArgument("filters must be a JSON object of lists")
    return {str(k): [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in f.items()}


@router.post(
    "/volumes",
    "Create a volume",
    status=201,
    response=_VOLUME,
    body={
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "labels": {"type": "object"},
            "driver": {"type": "string"},
        },
    },
)
async def create_volume(ctx: Ctx) -> object:
    body = await ctx.json()
    return _svc(ctx).create(
        ctx.ns,
        body.get("name") or None,
        labels=body.get("labels"),
        driver=body.get("driver") or "local",
        options=body.get("options"),
    )


@router.get(
    "/volumes",
    "List volumes",
    params={"filters": "JSON: dangling, name, label"},
    response={"type": "array", "items": _VOLUME},
)
async def list_volumes(ctx: Ctx) -> object:
    return _svc(ctx).list(ctx.ns, filters_arg(ctx))


@router.get("/volumes/{name}", "Inspect a volume", response=_VOLUME)
async def inspect_volume(ctx: Ctx) -> object:
    return _svc(ctx).inspect(ctx.ns, ctx.match["name"])


@router.delete(
    "/volumes/{name}",
    "Remove a volume (refused while a container uses it)",
    status=204,
    params={"force": "accepted for docker compatibility"},
)
async def remove_volume(ctx: Ctx) -> None:
    # a volume's data can be large: delete it off the event loop
    await asyncio.to_thread(_svc(ctx).remove, ctx.ns, ctx.match["name"], force=ctx.flag("force"))


@router.post(
    "/volumes/prune",
    "Remove unused volumes (anonymous ones unless all=true)",
    params={"all": "also named volumes", "filters": "JSON: label, label!, all"},
)
async def prune_volumes(ctx: Ctx) -> dict[str, object]:
    f = PruneFilters.parse(filters_arg(ctx), VOLUME_KEYS, "volume prune")
    return {"removed": await asyncio.to_thread(_svc(ctx).prune, ctx.ns, all=ctx.flag("all"), filters=f)}
