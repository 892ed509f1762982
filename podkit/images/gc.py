"""Garbage collection of blobs and committed snapshots nothing references.

Roots: every image record of every namespace (its index, manifests, configs,
layers and the layers' chain IDs); every active or view snapshot (a container's)
and its parents; leases and what was made during them; blobs and chain IDs made
in the last ``ctx.grace`` seconds and not yet named by an image (a pull or import in
flight). What an image removal released is freed at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from podkit.errors import PodkitError
from podkit.images.context import ImageContext
from podkit.images.image import chain_ids
from podkit.images.oci import INDEX_TYPES, Descriptor
from podkit.snapshots import COMMITTED, Info

log = logging.getLogger(__name__)


@dataclass
class _Roots:
    blobs: set[str]
    snaps: set[str]
    since: float | None  # start of the oldest active lease: anything newer is kept
    recent: float  # start of the grace period


def gc(ctx: ImageContext) -> dict[str, int]:
    """Delete blobs and committed snapshots that nothing references (see the module)."""
    with ctx.gc_lock:
        roots = _roots(ctx, ctx.grace)
        infos = {i.key: i for i in ctx.snapshots.list()}
        kept = _kept_snapshots(ctx, infos, roots)
        n_snaps, freed = _remove_snapshots(ctx, infos, kept)
        n_blobs, blob_bytes = _remove_blobs(ctx, roots)
        freed += blob_bytes
        if n_blobs:
            ctx.cache = {k: v for k, v in ctx.cache.items() if k[0] in roots.blobs}
        if n_blobs or n_snaps:
            log.info("gc: removed %d blobs and %d snapshots (%d bytes)", n_blobs, n_snaps, freed)
        return {"blobs": n_blobs, "snapshots": n_snaps, "bytes": freed}


def _roots(ctx: ImageContext, grace: float) -> _Roots:
    ctx.leases.expire()
    blobs: set[str] = set(ctx.leases.refs("content"))
    snaps: set[str] = set()
    for r in ctx.db.query("SELECT * FROM images"):
        blobs.add(r["digest"])
        mark(ctx, Descriptor(r["media_type"], r["digest"], r["size"]), blobs, snaps)
    snaps |= ctx.leases.refs("snapshot")
    return _Roots(blobs, snaps, ctx.leases.oldest_active(), time.time() - grace)


def _kept_snapshots(ctx: ImageContext, infos: dict[str, Info], roots: _Roots) -> set[str]:
    """Whatever is kept keeps its parents; active snapshots are always kept."""
    todo = [
        k
        for k, i in infos.items()
        if i.kind != COMMITTED
        or k in roots.snaps
        or (roots.since is not None and i.created >= roots.since)
        or (i.created >= roots.recent and k not in ctx.released_snaps)
    ]
    kept: set[str] = set()
    while todo:
        k = todo.pop()
        if k in kept or k not in infos:
            continue
        kept.add(k)
        if infos[k].parent:
            todo.append(infos[k].parent or "")
    return kept


def _remove_snapshots(ctx: ImageContext, infos: dict[str, Info], kept: set[str]) -> tuple[int, int]:
    """Remove the snapshots not kept, children before parents; (how many, bytes)."""
    freed = 0
    n_snaps = 0
    doomed = [k for k in infos if k not in kept]
    while doomed:
        progress = False
        for k in list(doomed):
            if any(infos[o].parent == k for o in doomed if o != k):
                continue
            try:
                freed += ctx.snapshots.usage(k).size
                ctx.snapshots.remove(k)
                n_snaps += 1
                ctx.released_snaps.discard(k)
            except PodkitError as e:  # the next GC tries again
                log.warning("gc: could not remove snapshot %s: %s", k, e.message)
            doomed.remove(k)
            progress = True
        if not progress:
            break
    return n_snaps, freed


def _remove_blobs(ctx: ImageContext, roots: _Roots) -> tuple[int, int]:
    """Remove the blobs not kept (nor too recent); (how many, bytes)."""
    n_blobs = 0
    freed = 0
    for d in list(ctx.content):
        if d in roots.blobs:
            continue
        path = ctx.content.path(d)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if roots.since is not None and st.st_mtime >= roots.since - 1:
            continue
        if st.st_mtime >= roots.recent and d not in ctx.released_blobs:
            continue
        freed += st.st_size
        ctx.content.delete(d)
        ctx.released_blobs.discard(d)
        ctx.json_cache.pop(d, None)
        n_blobs += 1
    return n_blobs, freed


async def gc_async(ctx: ImageContext) -> dict[str, int]:
    """gc() in a worker thread; failures are logged (used for the start-up sweep)."""
    try:
        return await asyncio.to_thread(gc, ctx)
    except Exception:
        log.exception("garbage collection failed")
        return {"blobs": 0, "snapshots": 0, "bytes": 0}


def mark(ctx: ImageContext, target: Descriptor, blobs: set[str], snaps: set[str]) -> None:
    """Add what ``target`` references (blobs, and its layers' chain IDs) to the sets."""
    blobs.add(target.digest)
    if not ctx.content.has(target.digest):
        return
    try:
        doc = ctx.read_json(target.digest)
    except PodkitError:  # not JSON (a layer): nothing below it
        return
    if target.media_type in INDEX_TYPES or (not target.media_type and "manifests" in doc):
        for m in doc.get("manifests") or []:
            try:
                mark(ctx, Descriptor.from_dict(m), blobs, snaps)
            except PodkitError as e:  # a malformed entry references nothing
                log.debug("gc: skipping an index entry of %s: %s", target.digest, e.message)
        return
    cfg = doc.get("config") or {}
    if cfg.get("digest"):
        blobs.add(cfg["digest"])
    for layer in doc.get("layers") or []:
        if layer.get("digest"):
            blobs.add(layer["digest"])
    if cfg.get("digest") and ctx.content.has(cfg["digest"]):
        try:
            config = ctx.read_json(cfg["digest"])
        except PodkitError:  # an unreadable config: its layers' chain IDs are unknown
            return
        snaps.update(chain_ids(list((config.get("rootfs") or {}).get("diff_ids") or [])))
