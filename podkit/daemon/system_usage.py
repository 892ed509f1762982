"""`system df` and `system prune`: what spans the image, container, volume and network
layers, composed here (the daemon is the one place that knows them all).

Image sizes are the unpacked layers' (snapshot usage by chain ID); a layer two images
share counts once in the total and is each one's shared size. The build cache is the
images of the build namespace (podkit/build: each step an image there), their layers
that no image of the namespace holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument, PodkitError
from podkit.prune import SYSTEM_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.daemon.services import Services
    from podkit.images.image import Image

log = logging.getLogger(__name__)

BUILD_NS = "podkit-build"  # podkit.build.builder.BUILD_NS (not imported: it pulls the builder in)


def _layer_sizes(services: Services, images: list[Image]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for img in images:
        for chain in img.chain:
            if chain in sizes:
                continue
            try:
                sizes[chain] = services.snapshots.usage(chain).size
            except PodkitError:
                sizes[chain] = 0  # not unpacked: no bytes on disk for it
    return sizes


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                continue  # removed while we walked
    return total


def _images(services: Services, ns: str, users: Mapping[str, int]) -> tuple[list[dict[str, Any]], int]:
    imgs = services.images.list(ns)
    sizes = _layer_sizes(services, imgs)
    holders: dict[str, set[str]] = {}
    for img in imgs:
        for chain in img.chain:
            holders.setdefault(chain, set()).add(img.id)
    by_id: dict[str, dict[str, Any]] = {}
    for img in imgs:
        d = by_id.get(img.id)
        if d is not None:  # another name of the same image
            if not img.dangling:
                d["names"].append(img.name)
            continue
        size = sum(sizes[c] for c in img.chain)
        shared = sum(sizes[c] for c in img.chain if len(holders[c]) > 1)
        by_id[img.id] = {
            "id": img.id,
            "names": [] if img.dangling else [img.name],
            "created": img.created,
            "image_created": (img.config or {}).get("created", ""),
            "size": size,
            "shared_size": shared,
            "unique_size": size - shared,
            "containers": users.get(img.id, 0),
        }
    return list(by_id.values()), sum(sizes.values())


def _build_cache(services: Services, ns_layers: set[str]) -> list[dict[str, Any]]:
    imgs = services.images.list(BUILD_NS)
    sizes = _layer_sizes(services, imgs)
    seen = set(ns_layers)
    out = []
    for img in sorted(imgs, key=lambda i: i.created):
        own = [c for c in img.chain if c not in seen]
        seen.update(own)
        out.append(
            {
                "id": img.id,
                "name": img.name,
                "created": img.created,
                "last_used": img.updated or img.created,
                "size": sum(sizes[c] for c in own),
                "shared": not own and bool(img.chain),
                "in_use": False,
                "type": "regular",
            }
        )
    return out


async def disk_usage(services: Services, ns: str) -> dict[str, Any]:
    """Images (size, shared, unique, containers using them), containers (what they
    wrote, size with the image), volumes (size, containers using them), build cache."""
    recs = await services.containers.list(ns, all=True)
    users: dict[str, int] = {}
    for r in recs:
        users[r["image_id"]] = users.get(r["image_id"], 0) + 1
    images, layers_size = await asyncio.to_thread(_images, services, ns, users)
    ns_layers = {c for img in services.images.list(ns) for c in img.chain}
    containers = []
    for r in recs:
        try:
            sz = await services.containers.sizes(ns, r["id"])
            mounts = (await services.containers.inspect(ns, r["id"])).get("mounts") or []
        except PodkitError as e:  # removed since the listing
            log.debug("df skips container %s: %s", r["id"][:12], e.message)
            continue
        containers.append(
            {
                "id": r["id"],
                "name": r["name"],
                "image": r["image"],
                "command": r.get("command") or [],
                "state": r["state"],
                "status": r["status"],
                "created": r["created"],
                "volumes": sum(1 for m in mounts if m.get("type") == "volume"),
                **sz,
            }
        )
    volumes = []
    for v in await asyncio.to_thread(services.volumes.list, ns):
        volumes.append(
            {
                "name": v["name"],
                "driver": v.get("driver", "local"),
                "labels": v.get("labels") or {},
                "mountpoint": v["mountpoint"],
                "links": len(v.get("in_use_by") or []),
                "size": await asyncio.to_thread(_du, v["mountpoint"]),
            }
        )
    cache = await asyncio.to_thread(_build_cache, services, ns_layers)
    return {
        "layers_size": layers_size,
        "images": images,
        "containers": containers,
        "volumes": volumes,
        "build_cache": cache,
    }


async def prune_system(
    services: Services,
    ns: str,
    *,
    all: bool = False,
    volumes: bool = False,
    filters: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """docker's `system prune`: stopped containers, unused networks, (``volumes``)
    unused anonymous volumes, dangling (``all``: unused) images, the build cache;
    ``filters`` (until, label, label!) apply to each. In that order, so that what the
    containers held is free when its turn comes."""
    f = filters or {}
    if volumes and "until" in f:
        raise InvalidArgument('the "until" filter is not supported with --volumes')
    pf = PruneFilters.parse(f, SYSTEM_KEYS, "system prune")
    out: dict[str, Any] = {"containers": await services.containers.prune(ns, pf)}
    nets = await services.networks.prune(pf)
    for n in nets:
        services.events.publish(ns, "network", "remove", n.id, name=n.name)
    out["networks"] = [n.name for n in nets]
    if volumes:
        out["volumes"] = await asyncio.to_thread(services.volumes.prune, ns, False, pf)
    images = await asyncio.to_thread(services.images.prune, ns, all, pf)
    # the build cache: every step image no build is using (each is named, never dangling)
    cache = await asyncio.to_thread(services.images.prune, BUILD_NS, True, pf)
    out["images"] = images.get("deleted") or []
    out["build_cache"] = [d["Deleted"] for d in cache.get("deleted") or [] if "Deleted" in d]
    out["space_reclaimed"] = int(images.get("space_reclaimed") or 0) + int(cache.get("space_reclaimed") or 0)
    return out
