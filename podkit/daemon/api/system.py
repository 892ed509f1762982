"""System routes: version, info, events."""

from __future__ import annotations

import inspect
import os
import platform
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from podkit._version import API_VERSION, __version__
from podkit.daemon.api._routing import Ctx, Router
from podkit.daemon.events import Event

router = Router("system")


@router.get("/version", "Daemon and API version")
async def version(ctx: Ctx) -> dict[str, Any]:
    return {
        "version": __version__,
        "api_version": API_VERSION,
        "python": platform.python_version(),
        "os": "linux",
        "arch": platform.machine(),
        "kernel": platform.release(),
    }


@router.get("/info", "Host, store and runtime facts")
async def info(ctx: Ctx) -> dict[str, Any]:
    s = ctx.services
    out: dict[str, Any] = {
        "version": __version__,
        "root": str(s.config.root),
        "state": str(s.config.state),
        "socket": str(s.config.socket),
        "pid": os.getpid(),
        "namespace": ctx.ns,
        "namespaces": s.db.namespaces(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
    }
    for name in ("snapshots", "images", "runtime", "networks", "containers", "pods"):
        layer = getattr(s, name)
        if layer is None or not hasattr(layer, "info"):
            continue
        # Host-wide layers (runtime) describe themselves without a namespace.
        takes_ns = len(inspect.signature(layer.info).parameters) > 0
        value = layer.info(ctx.ns) if takes_ns else layer.info()
        out[name] = await value if inspect.isawaitable(value) else value
    return out


@router.get(
    "/system/df",
    "Disk usage: images (size, shared, unique, containers), containers (written, with the "
    "image), volumes (size, links), build cache",
)
async def system_df(ctx: Ctx) -> dict[str, Any]:
    from podkit.daemon.system_usage import disk_usage

    return await disk_usage(ctx.services, ctx.ns)


@router.post(
    "/system/prune",
    "Remove stopped containers, unused networks, dangling (all: unused) images, the build "
    "cache, and with volumes unused anonymous volumes",
    body={
        "type": "object",
        "properties": {
            "all": {"type": "boolean"},
            "volumes": {"type": "boolean"},
            "filters": {"type": "object", "description": "until, label, label! (lists of strings)"},
        },
    },
)
async def system_prune(ctx: Ctx) -> dict[str, Any]:
    from podkit.daemon.system_usage import prune_system

    body = await ctx.json()
    return await prune_system(
        ctx.services,
        ctx.ns,
        all=bool(body.get("all")),
        volumes=bool(body.get("volumes")),
        filters=body.get("filters") or None,
    )


@router.get(
    "/events",
    "Stream lifecycle events",
    params={
        "since": "unix time: replay recent events from then",
        "type": "filter by type",
        "until": "unix time: stop then",
    },
    stream=True,
)
async def events(ctx: Ctx) -> web.StreamResponse:
    bus = ctx.services.events
    since = ctx.query.get("since")
    until = ctx.query.get("until")
    typ = ctx.query.get("type")

    def keep(ev: Event) -> bool:
        return ev.namespace == ctx.ns and (not typ or ev.type == typ)

    async def gen() -> AsyncIterator[dict[str, Any]]:
        if since:
            for ev in bus.recent(float(since)):
                if keep(ev):
                    yield ev.to_dict()
        if until and float(until) <= time.time():
            return
        async for ev in bus.subscribe():
            if until and ev.time > float(until):
                return
            if keep(ev):
                yield ev.to_dict()

    return await ctx.stream(gen())
